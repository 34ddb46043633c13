"""Retention: how long each kind of growing record is kept, and the job that prunes them in
bounded batches (post-auth log summarised per day, detail spools compressed then deleted,
closed sessions, outbox, audit log, enforcement attempts, job runs). Money is never pruned."""
