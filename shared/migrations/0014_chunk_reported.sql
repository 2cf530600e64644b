-- A finished chunk's BatchErased is sent again on redelivery only when its first publish did
-- not go out (reported stays false): a chunk delivered twice (two replicas finishing a wave
-- at once both publish the next one) is not counted twice in the rows-erased metrics.
ALTER TABLE lethe.erase_chunks ADD COLUMN IF NOT EXISTS reported boolean NOT NULL DEFAULT false;
UPDATE lethe.erase_chunks SET reported = true WHERE status <> 'pending';
