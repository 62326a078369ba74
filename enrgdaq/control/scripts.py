"""Lua scripts for the job registry's transitions (each runs atomically in Redis).

Key and argument order is documented above each script; the Python side is
:class:`enrgdaq.control.registry.JobRegistry`.
"""

# KEYS: job, lease. ARGV: task_id, pid, hostname, now, lease_ms
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local f = redis.call('HMGET', KEYS[1], 'desired', 'task_id', 'state')
if f[1] ~= 'run' then return 'not_wanted' end
if f[2] ~= ARGV[1] then return 'stale' end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[5]) then return 'duplicate' end
if f[3] ~= 'waiting' then
  redis.call('DEL', KEYS[2])
  return 'stale'
end
redis.call('HSET', KEYS[1], 'state', 'starting', 'pid', ARGV[2], 'hostname', ARGV[3],
           'started_at', ARGV[4], 'last_heartbeat', ARGV[4], 'error', '', 'stop_task', '')
return 'ok'
"""

# KEYS: job, lease. ARGV: task_id, now, lease_ms
# A lease that ran out while its run was silent (a loaded machine, a long call that held the
# GIL) is taken back when nobody ended the run meanwhile: the supervisor declares a run on its
# own host dead only once its process is gone or killed (see reconcile.py), never beside it.
RENEW = """
local held = redis.call('GET', KEYS[2])
if held and held ~= ARGV[1] then return 'lost' end
local f = redis.call('HMGET', KEYS[1], 'task_id', 'desired', 'stop_task', 'state')
if f[1] ~= ARGV[1] then return 'lost' end
if not held then
  if f[4] ~= 'starting' and f[4] ~= 'running' then return 'lost' end
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'last_heartbeat', ARGV[2])
if f[2] ~= 'run' or f[3] == ARGV[1] then return 'stop' end
return 'ok'
"""

# KEYS: job. ARGV: task_id
MARK_RUNNING = """
local f = redis.call('HMGET', KEYS[1], 'task_id', 'state')
if f[1] == ARGV[1] and f[2] == 'starting' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  return 1
end
return 0
"""

# KEYS: job, lease, restarts.
# ARGV: task_id, outcome, error, at (last sign of life), backoff_max, alive_seconds, uid, now
END = """
local f = redis.call('HMGET', KEYS[1], 'task_id', 'state', 'desired', 'restart_on_crash',
                     'restart_offset', 'started_at', 'consecutive_crashes', 'restarts', 'removed')
if f[1] ~= ARGV[1] then return 'ignored' end
if f[2] ~= 'starting' and f[2] ~= 'running' and f[2] ~= 'waiting' then return 'ignored' end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
local at = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'exit_reason', ARGV[2], 'error', ARGV[3], 'ended_at', ARGV[8])
if ARGV[3] ~= '' then
  -- kept across the next run (which clears 'error'): an operator still sees why it crashed
  redis.call('HSET', KEYS[1], 'last_error', ARGV[3], 'last_error_at', ARGV[8])
end
if f[3] ~= 'run' or f[9] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'stopped', 'restart_at', '')
  redis.call('ZREM', KEYS[3], ARGV[7])
  return 'stopped'
end
if ARGV[2] == 'invalid config' then
  redis.call('HSET', KEYS[1], 'state', 'crashed', 'restart_at', '')
  redis.call('ZREM', KEYS[3], ARGV[7])
  return 'crashed'
end
local offset = tonumber(f[5]) or 2
local delay = offset
if ARGV[2] ~= 'stopped' then
  if f[4] == '0' then
    redis.call('HSET', KEYS[1], 'state', 'crashed', 'restart_at', '')
    return 'crashed'
  end
  local consecutive = tonumber(f[7]) or 0
  local started = tonumber(f[6]) or at
  if at - started >= tonumber(ARGV[6]) then consecutive = 0 end
  consecutive = consecutive + 1
  delay = offset * (2 ^ (consecutive - 1))
  local cap = math.max(tonumber(ARGV[5]), offset)
  if delay > cap then delay = cap end
  redis.call('HSET', KEYS[1], 'consecutive_crashes', consecutive)
end
local restart_at = at + delay
redis.call('HSET', KEYS[1], 'state', 'restart_scheduled', 'restart_at', string.format('%.6f', restart_at),
           'restarts', (tonumber(f[8]) or 0) + 1)
redis.call('ZADD', KEYS[3], string.format('%.6f', restart_at), ARGV[7])
return 'restart_scheduled'
"""

# KEYS: restarts. ARGV: now, limit. Removes and returns the uids that are due.
TAKE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, uid in ipairs(due) do redis.call('ZREM', KEYS[1], uid) end
return due
"""

# KEYS: job. ARGV: task_id, now. Returns {queue, daq_job_type} or nil.
PREPARE_DISPATCH = """
local f = redis.call('HMGET', KEYS[1], 'desired', 'state', 'queue', 'daq_job_type', 'removed')
if f[1] ~= 'run' or f[5] == '1' then return false end
if f[2] ~= 'restart_scheduled' and f[2] ~= 'registered' then return false end
redis.call('HSET', KEYS[1], 'state', 'waiting', 'task_id', ARGV[1], 'restart_at', '',
           'dispatched_at', ARGV[2])
return {f[3], f[4]}
"""

# KEYS: job, restarts. ARGV: reason, uid
REQUEST_STOP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
redis.call('HSET', KEYS[1], 'desired', 'stop', 'stop_reason', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'starting' or st == 'running' then return 'stopping' end
redis.call('HSET', KEYS[1], 'state', 'stopped', 'restart_at', '')
return 'stopped'
"""

# KEYS: job, restarts. ARGV: uid, now
REQUEST_START = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
redis.call('HSET', KEYS[1], 'desired', 'run', 'stop_reason', '')
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'stopped' or st == 'crashed' then
  redis.call('HSET', KEYS[1], 'state', 'registered', 'consecutive_crashes', 0)
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 'scheduled'
end
return st
"""

# KEYS: job. ARGV: task_id. Asks one run to end (worker shutdown, new config).
STOP_RUN = """
if redis.call('HGET', KEYS[1], 'task_id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'stop_task', ARGV[1])
return 1
"""
