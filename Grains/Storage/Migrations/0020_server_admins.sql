-- Server admins: accounts allowed to call the admin APIs (Synapse's users.admin). Configuration can name admins too
-- (Homeserver:AdminUsers), so an operator has a first admin without a database write.
ALTER TABLE users ADD COLUMN admin boolean NOT NULL DEFAULT false;
