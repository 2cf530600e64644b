-- Compose only: the two databases `make up` creates locally, and the read-only platform role
-- intake uses (it checks the data map against the platform; it never writes there).
CREATE DATABASE lethe;
CREATE DATABASE platform;
CREATE ROLE lethe_reader LOGIN PASSWORD 'lethe-reader';
\connect platform
GRANT USAGE ON SCHEMA public TO lethe_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO lethe_reader;
