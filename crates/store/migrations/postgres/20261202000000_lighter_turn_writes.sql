-- The lease reapers scan the streaming messages through messages_streaming
-- (only answers in flight are in it), so a second index of those messages
-- by lease is not needed; it was rewritten by every turn and checkpoint.
DROP INDEX messages_streaming_lease;
