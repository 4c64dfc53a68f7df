-- Which service process stored each event (a random name chosen when the process connects).
-- Processes sharing a database relay events through Redis; after an outage, or when a process
-- starts, it replays from this table what the others stored, and this column is how it tells
-- their events from its own without a race against its own in-flight deliveries.
-- Rows stored before this migration have no origin and count as another process's.
ALTER TABLE events ADD COLUMN origin TEXT;
