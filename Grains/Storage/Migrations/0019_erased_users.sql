-- Users who deactivated with erase (spec: POST /account/deactivate, "erase"): besides their profile, their messages are
-- shown pruned to anyone who was not in the room when they were sent (as Synapse does). Set with the deactivation.
ALTER TABLE users ADD COLUMN erased boolean NOT NULL DEFAULT false;
