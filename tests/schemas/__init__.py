"""Platform schemas for the correctness tests, other than the sample one."""
