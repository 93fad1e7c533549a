"""Lua scripts of the Redis queue store: each one is a single atomic step on the server.

Every key shares the namespace's hash tag (``{fluid}:...``), so a script touches one
Redis Cluster slot. ``ARGV[1]`` is always the key prefix and ``ARGV[2]`` is "1" when the
history outbox is on. Runs are hashes of string fields; the scripts only touch scalar
fields (state, version, times, lease) and never decode the JSON ones (params, result), so
cjson's lossy round trips (empty arrays become objects) cannot corrupt them.
"""

from __future__ import annotations

from fluid.scheduler.models import TaskState

# The states the scripts test, as Lua names made from TaskState so the scripts and Python
# agree: QUEUED, RUNNING and DONE, the set of finished states.
_STATES = (
    f"local QUEUED, RUNNING = '{TaskState.queued.value}', '{TaskState.running.value}'\n"
    "local DONE = {"
    + ", ".join(f"{state.value}=true" for state in TaskState if state.is_done)
    + "}\n"
)

# Keeps a run's indexes in line with its new state; shared by every writing script.
_REINDEX = (
    """
local p = ARGV[1]
local outbox = ARGV[2] == '1'
-- Set when a run became ready or delayed: waiting lease calls hear it once per script.
local work = false
"""
    + _STATES
    + """
-- Each run has its own channel carrying its new snapshot: only dispatchers with a
-- watcher of that run subscribe, and they need not read the run back.
local function signal(id, snapshot)
  redis.call('PUBLISH', p .. 'run:' .. id .. ':changes', snapshot)
end

-- A run's HGETALL reply as a JSON object of strings (cjson is safe on a flat string map).
local function snapshot_of(flat)
  local fields = {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  return cjson.encode(fields)
end

-- The snapshot (a JSON object of strings) as HSET's field/value list: the fields travel
-- once, as the snapshot, instead of a second time as separate arguments.
local function fields_of(snapshot)
  local flat = {}
  for name, value in pairs(cjson.decode(snapshot)) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  return flat
end

local function to_outbox(id, snapshot)
  if outbox then
    redis.call('XADD', p .. 'outbox', '*', 'id', id, 'snapshot', snapshot)
  end
end

local function reindex(id, task, old_state, new_state, execute_after, score, end_ts, snapshot)
  local key = p .. 'run:' .. id
  if old_state == RUNNING and new_state ~= RUNNING then
    if redis.call('ZREM', p .. 'leases', id) == 1 then
      redis.call('DECR', p .. 'running:' .. task)
      redis.call('HINCRBY', p .. 'worker-load', redis.call('HGET', key, 'lease_worker'), -1)
    end
    redis.call('HDEL', key, 'lease_worker', 'lease_attempt', 'lease_deadline', 'abort')
  end
  redis.call('ZREM', p .. 'ready:' .. task, id)
  redis.call('ZREM', p .. 'delayed', id)
  redis.call('ZREM', p .. 'blocked', id)
  -- Queue depth per priority, kept as runs enter and leave the queued state (O(1)).
  -- and runs waiting per task (for max_queued), the same way.
  if (old_state == QUEUED) ~= (new_state == QUEUED) then
    local priority = redis.call('HGET', key, 'priority')
    local step = new_state == QUEUED and 1 or -1
    redis.call('HINCRBY', p .. 'depth', priority, step)
    redis.call('HINCRBY', p .. 'waiting', task, step)
  end
  if new_state == QUEUED then
    if execute_after ~= '' then
      redis.call('ZADD', p .. 'delayed', execute_after, id)
    else
      redis.call('ZADD', p .. 'ready:' .. task, score, id)
    end
    work = true
  elseif DONE[new_state] then
    redis.call('ZADD', p .. 'finished', end_ts, id)
  end
  to_outbox(id, snapshot)
  signal(id, snapshot)
end

local function announce_work()
  if work then redis.call('PUBLISH', p .. 'signals', 'work') end
end
"""
)

# ARGV: prefix, outbox, the number of (task, max_queued) pairs and the pairs, then per run:
# id, idempotency key, snapshot (the run's fields as a JSON object), state, task,
# execute_after, score, end_ts. Returns, per run, "" when created, else the id of the run
# already there (same id, or same idempotency key); or {"!full", task, runs waiting} and
# nothing added when the new runs would take a task past its max_queued.
ADD_RUNS = (
    _REINDEX
    + """
local first = 4 + 2 * tonumber(ARGV[3])
local limits = {}
for i = 4, first - 1, 2 do limits[ARGV[i]] = tonumber(ARGV[i + 1]) end
if next(limits) ~= nil then
  local adding = {}
  for i = first, #ARGV, 8 do
    local id, idem, task = ARGV[i], ARGV[i + 1], ARGV[i + 4]
    local exists = redis.call('EXISTS', p .. 'run:' .. id) == 1
      or (idem ~= '' and redis.call('EXISTS', p .. 'idem:' .. idem) == 1)
    if limits[task] and not exists then adding[task] = (adding[task] or 0) + 1 end
  end
  for task, count in pairs(adding) do
    local waiting = tonumber(redis.call('HGET', p .. 'waiting', task) or '0')
    if waiting + count > limits[task] then return {'!full', task, tostring(waiting)} end
  end
end
local existing = {}
for i = first, #ARGV, 8 do
  local id, idem, snapshot = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local found = ''
  if idem ~= '' then found = redis.call('GET', p .. 'idem:' .. idem) or '' end
  local key = p .. 'run:' .. id
  if found == '' and redis.call('EXISTS', key) == 1 then found = id end
  if found == '' then
    if idem ~= '' then redis.call('SET', p .. 'idem:' .. idem, id) end
    redis.call('HSET', key, 'idem', idem, unpack(fields_of(snapshot)))
    reindex(id, ARGV[i + 4], '', ARGV[i + 3], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], snapshot)
  end
  existing[#existing + 1] = found
end
announce_work()
return existing
"""
)

# Compare-and-set of a whole run. ARGV: prefix, outbox, id, expected version, snapshot,
# state, task, execute_after, score, end_ts. Returns 1 or 0.
APPLY = (
    _REINDEX
    + """
local id = ARGV[3]
local key = p .. 'run:' .. id
local current = redis.call('HMGET', key, 'v', 'state')
if not current[1] or current[1] ~= ARGV[4] then return 0 end
redis.call('HSET', key, unpack(fields_of(ARGV[5])))
reindex(id, ARGV[7], current[2], ARGV[6], ARGV[8], ARGV[9], ARGV[10], ARGV[5])
announce_work()
return 1
"""
)

# Promote due runs, then lease the best ready runs of the given tasks. ARGV: prefix,
# outbox, worker id, now, lease deadline, max runs, blocked-retry cutoff, task count, then
# (name, max_concurrency) per task. Returns {the leased runs' HGETALL replies, (blocked id,
# its task, '1' when that task is enabled else '0') triples, the next delayed run's due
# time or ""}. A leased run gets the fields transitions.leased sets (state, start, end,
# worker_id), atomically with the concurrency count.
# The enabled flag is read here, not passed in: a replica's cached registration may not
# have seen an operator disable the task on another replica a moment ago.
LEASE = (
    _REINDEX
    + """
local worker, now, deadline = ARGV[3], ARGV[4], ARGV[5]
local max_runs = tonumber(ARGV[6])

-- The runs of ``index`` scored up to ``cutoff`` leave it; the queued ones join their
-- task's ready queue with their precomputed score.
local function to_ready(index, cutoff)
  local ids = redis.call('ZRANGEBYSCORE', p .. index, '-inf', cutoff, 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do
    redis.call('ZREM', p .. index, id)
    local run = redis.call('HMGET', p .. 'run:' .. id, 'task', 'score', 'state')
    if run[3] == QUEUED then redis.call('ZADD', p .. 'ready:' .. run[1], run[2], id) end
  end
end
-- Delayed runs once due.
to_ready('delayed', now)
-- A blocked run whose follow-up never came (its dispatcher died) is considered again.
to_ready('blocked', ARGV[7])

local tasks = {}
for i = 9, 8 + 2 * tonumber(ARGV[8]), 2 do
  tasks[#tasks + 1] = {name = ARGV[i], limit = tonumber(ARGV[i + 1]),
    enabled = redis.call('HGET', p .. 'enabled', ARGV[i]) ~= '0'}
end

local leased, blocked = {}, {}
while #leased < max_runs do
  local best, best_score, best_task = nil, nil, nil
  for _, task in ipairs(tasks) do
    if not task.saturated then
      local head = redis.call('ZRANGE', p .. 'ready:' .. task.name, 0, 0, 'WITHSCORES')
      if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
        best, best_score, best_task = head[1], tonumber(head[2]), task
      end
    end
  end
  if best == nil then break end
  redis.call('ZREM', p .. 'ready:' .. best_task.name, best)
  local running_key = p .. 'running:' .. best_task.name
  local running = tonumber(redis.call('GET', running_key) or '0')
  if not best_task.enabled or (best_task.limit > 0 and running >= best_task.limit) then
    -- Parked durably until the dispatcher applies the domain's decision (APPLY). Only
    -- the run that met the limit is blocked: its task is skipped for the rest of the call.
    redis.call('ZADD', p .. 'blocked', now, best)
    blocked[#blocked + 1] = best
    blocked[#blocked + 1] = best_task.name
    blocked[#blocked + 1] = best_task.enabled and '1' or '0'
    best_task.saturated = true
  else
    local key = p .. 'run:' .. best
    local attempt = redis.call('HGET', key, 'attempt')
    redis.call('HINCRBY', key, 'v', 1)
    redis.call('HSET', key, 'state', RUNNING, 'start', now, 'end', '', 'worker_id', worker,
      'lease_worker', worker, 'lease_attempt', attempt, 'lease_deadline', deadline)
    redis.call('HDEL', key, 'abort')
    redis.call('INCR', running_key)
    redis.call('HINCRBY', p .. 'worker-load', worker, 1)
    redis.call('HINCRBY', p .. 'depth', redis.call('HGET', key, 'priority'), -1)
    redis.call('HINCRBY', p .. 'waiting', best_task.name, -1)
    redis.call('ZADD', p .. 'leases', deadline, best)
    local flat = redis.call('HGETALL', key)
    local snapshot = snapshot_of(flat)
    to_outbox(best, snapshot)
    signal(best, snapshot)
    leased[#leased + 1] = flat
  end
end
local next_due = redis.call('ZRANGE', p .. 'delayed', 0, 0, 'WITHSCORES')[2] or ''
return {leased, blocked, next_due}
"""
)

# ARGV: prefix, outbox, worker id, then (run id, new deadline) pairs. Returns renewed ids.
RENEW = """
local p, worker = ARGV[1], ARGV[3]
local renewed = {}
for i = 4, #ARGV, 2 do
  local id, deadline = ARGV[i], ARGV[i + 1]
  local key = p .. 'run:' .. id
  if redis.call('HGET', key, 'lease_worker') == worker then
    redis.call('HSET', key, 'lease_deadline', deadline)
    redis.call('ZADD', p .. 'leases', 'XX', deadline, id)
    renewed[#renewed + 1] = id
  end
end
return renewed
"""

# Takes each task's definition unless the stored one is of a newer worker generation
# (records.newer: an unknown generation, '', is older than any; a tie is taken), so two
# replicas registering workers of two generations at once keep the newer one.
# ARGV: prefix, outbox, generation (a timestamp, or ''), then pairs of task name and
# encoded definition. Returns, per task: the definition before ('' when new), its
# generation before ('' when unknown) and 1 when this one was taken, else 0.
REGISTER = """
local p, generation = ARGV[1], ARGV[3]
local mine = tonumber(generation) or -math.huge
local result = {}
for i = 4, #ARGV, 2 do
  local name = ARGV[i]
  local before = redis.call('HGET', p .. 'tasks', name)
  local stored = redis.call('HGET', p .. 'generations', name)
  local taken = 0
  if not before or mine >= (tonumber(stored) or -math.huge) then
    redis.call('HSET', p .. 'tasks', name, ARGV[i + 1])
    if generation == '' then
      redis.call('HDEL', p .. 'generations', name)
    else
      redis.call('HSET', p .. 'generations', name, generation)
    end
    redis.call('HSETNX', p .. 'enabled', name, '1')
    taken = 1
  end
  result[#result + 1] = before or ''
  result[#result + 1] = stored or ''
  result[#result + 1] = taken
end
return result
"""

# ARGV: prefix, outbox, run id, reason. Returns 1 when the run was running.
REQUEST_ABORT = (
    _STATES
    + """local key = ARGV[1] .. 'run:' .. ARGV[3]
if redis.call('HGET', key, 'state') ~= RUNNING then return 0 end
redis.call('HSET', key, 'abort', ARGV[4])
-- A new version: a decision made on the lease as it was before (a report applied on the
-- snapshot its lease call returned) must fail its compare-and-set and read this one.
redis.call('HINCRBY', key, 'v', 1)
return 1
"""
)

# ARGV: prefix, outbox, cutoff, limit. Forgets finished runs; returns how many.
PURGE = (
    """
local p = ARGV[1]
"""
    + _STATES
    + """local purged = 0
local old = redis.call('ZRANGEBYSCORE', p .. 'finished', '-inf', '(' .. ARGV[3],
  'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(old) do
  redis.call('ZREM', p .. 'finished', id)
  local key = p .. 'run:' .. id
  local run = redis.call('HMGET', key, 'state', 'idem')
  if run[1] and DONE[run[1]] then
    redis.call('DEL', key)
    if run[2] and run[2] ~= '' then redis.call('DEL', p .. 'idem:' .. run[2]) end
    purged = purged + 1
  end
end
return purged
"""
)

# Rebuild the ``waiting`` counts (runs queued per task, for max_queued) from the queue's
# indexes, once per namespace: a namespace written before the counts existed has queued
# runs they never counted. ARGV: prefix. Returns 1 when it rebuilt, 0 when already done.
REBUILD_WAITING = (
    _STATES
    + """local p = ARGV[1]
if redis.call('EXISTS', p .. 'waiting-v1') == 1 then return 0 end
redis.call('DEL', p .. 'waiting')
for _, task in ipairs(redis.call('HKEYS', p .. 'tasks')) do
  local ready = redis.call('ZCARD', p .. 'ready:' .. task)
  if ready > 0 then redis.call('HINCRBY', p .. 'waiting', task, ready) end
end
for _, index in ipairs({'delayed', 'blocked'}) do
  for _, id in ipairs(redis.call('ZRANGE', p .. index, 0, -1)) do
    local run = redis.call('HMGET', p .. 'run:' .. id, 'task', 'state')
    if run[2] == QUEUED then redis.call('HINCRBY', p .. 'waiting', run[1], 1) end
  end
end
redis.call('SET', p .. 'waiting-v1', '1')
return 1
"""
)
