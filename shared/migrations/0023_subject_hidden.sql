-- When the eraser hid the subject's own row (the data map's `hide` step: e.g. the account
-- disabled), before the rest of the erasure was planned; null when the map hides nothing.
ALTER TABLE lethe.erase_tasks ADD COLUMN hidden_at timestamptz;
