-- Fewer pages written per turn (each dirty page is a WAL frame at commit).
-- The lease reapers scan the streaming messages through messages_streaming
-- (only answers in flight are in it), so a second index of those messages
-- by lease is not needed; it was rewritten by every turn and checkpoint.
DROP INDEX messages_streaming_lease;
-- Budget reservations last only as long as their turns and SQLite has one
-- writer, which decides them all: they now live in a temporary table of the
-- writer's connection (in memory, see src/sqlite/mod.rs) and never reach
-- the WAL. A restart forgets them, as it interrupts the turns that held them.
DROP TABLE budget_reservations;
