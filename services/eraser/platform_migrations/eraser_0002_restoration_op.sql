-- What a restoration record undoes: the table's action (`erase`) or a detached link.
ALTER TABLE lethe.restoration_log ADD COLUMN op text NOT NULL DEFAULT 'erase';
