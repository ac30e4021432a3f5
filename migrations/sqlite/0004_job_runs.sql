-- Every run of a daemon job (sync, scan): when it started and ended, how, and what it did,
-- including the ticks skipped because the previous run was still going.
CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY,
    job         TEXT    NOT NULL,
    -- The id in the run's log lines (span field run_id).
    run_id      TEXT    NOT NULL,
    -- schedule | startup
    trigger     TEXT    NOT NULL,
    -- The process that runs it ("pid:start-time"), to tell a live run from a crashed one.
    owner       TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    -- running | success | failure | skipped (the previous run was still going) |
    -- interrupted (the process stopped while it ran)
    outcome     TEXT    NOT NULL DEFAULT 'running',
    -- The run's counts, as the one log line it ends with.
    summary     TEXT,
    error       TEXT
);
CREATE INDEX job_runs_latest ON job_runs (job, outcome, id);
