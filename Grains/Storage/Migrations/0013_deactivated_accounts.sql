-- Deactivated accounts keep their row (a user id is never handed out again) but can no longer log in: the flag is
-- set and the password hash removed in one statement.
ALTER TABLE users ADD COLUMN deactivated boolean NOT NULL DEFAULT false;
