-- Access requests (schema/FORMAT.md §5.7, §9.12): a user asks for a scope
-- they do not hold; an administrator holding it approves (a grant) or
-- declines. Each row is signed by the requester; one pending request per
-- user and scope.
CREATE TABLE access_requests (
    scope_id     INTEGER NOT NULL REFERENCES scopes (id),
    requester    TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    signature    BLOB NOT NULL,
    PRIMARY KEY (scope_id, requester)
);
