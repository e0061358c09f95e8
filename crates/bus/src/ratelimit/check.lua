-- One rate-limit check, atomically: reads the two-bucket counter of every
-- key, admits the request only if each has room, and then counts it in all
-- of them (or, refused, in none). The arithmetic is that of the Rust
-- `Counter` (ratelimit/counter.rs), which turns the counters this returns
-- into the decision; this script only has to agree with it on "has room".
--
-- KEYS[i]: the counter hash of limit i (fields w, b, p, c: window ms, bucket,
--          previous and current counts).
-- ARGV[1]: now, unix milliseconds; ARGV[2i], ARGV[2i+1]: window ms and limit
--          of limit i.
-- Returns {admitted (1|0), b1, p1, c1, b2, p2, c2, ...}: each counter as seen
-- at now, before this request was counted.

-- Lua numbers are doubles, exact only below 2^53, while a count times a
-- window can reach 2^72. Products are therefore split into limbs of 2^26,
-- whose partial products stay exact, and compared limb by limb.
local LIMB = 67108864

local function mul(a, b)
  local al, ah = a % LIMB, math.floor(a / LIMB)
  local bl, bh = b % LIMB, math.floor(b / LIMB)
  local lo = al * bl
  local mid = ah * bl + al * bh + math.floor(lo / LIMB)
  return ah * bh + math.floor(mid / LIMB), mid % LIMB, lo % LIMB
end

-- a × b <= c × d, exactly (inputs are integers below 2^48).
local function product_le(a, b, c, d)
  local x2, x1, x0 = mul(a, b)
  local y2, y1, y0 = mul(c, d)
  if x2 ~= y2 then return x2 < y2 end
  if x1 ~= y1 then return x1 < y1 end
  return x0 <= y0
end

local function int(x)
  return string.format('%.0f', x)
end

local now = tonumber(ARGV[1])
local seen = {}
local admitted = 1
for i = 1, #KEYS do
  local w, limit = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  -- floor(now / w), corrected in case the division rounded up.
  local bucket = math.floor(now / w)
  if bucket * w > now then
    bucket = bucket - 1
  elseif (bucket + 1) * w <= now then
    bucket = bucket + 1
  end
  local stored = redis.call('HMGET', KEYS[i], 'w', 'b', 'p', 'c')
  local sw, sb, sp, sc = tonumber(stored[1]), tonumber(stored[2]), tonumber(stored[3]), tonumber(stored[4])
  local b, p, c = bucket, 0, 0
  -- A counter kept for another window (the settings changed) starts afresh.
  if sw == w and sb and sp and sc then
    b, p, c = sb, sp, sc
    if bucket == b + 1 then
      p, c = c, 0
    elseif bucket > b + 1 then
      p, c = 0, 0
    end
    -- A clock that stepped back keeps the counts.
    if bucket > b then b = bucket end
  end
  seen[i] = { b, p, c }
  local elapsed = math.min(math.max(now - b * w, 0), w)
  -- Room: p × (w − elapsed) + (c + 1) × w <= limit × w.
  if c + 1 > limit or not product_le(p, w - elapsed, limit - c - 1, w) then
    admitted = 0
  end
end

local out = { admitted }
for i = 1, #KEYS do
  local b, p, c = seen[i][1], seen[i][2], seen[i][3]
  if admitted == 1 then
    local w = tonumber(ARGV[2 * i])
    redis.call('HSET', KEYS[i], 'w', int(w), 'b', int(b), 'p', int(p), 'c', int(c + 1))
    -- Counted now, it weighs until two buckets on; then the key goes.
    redis.call('PEXPIRE', KEYS[i], int((b + 2) * w - now))
  end
  out[#out + 1] = b
  out[#out + 1] = p
  out[#out + 1] = c
end
return out
