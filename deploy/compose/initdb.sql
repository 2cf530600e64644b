-- Compose only: the two databases `make up` creates locally.
CREATE DATABASE lethe;
CREATE DATABASE platform;
