-- wrk script: the student walk (*123#, then 1, then 1: current term results, END) over many
-- synthetic subscribers. Run with one connection per thread (-t N -c N): wrk then sends each
-- thread's next request only after the previous answer, so a dialogue's hops stay in order.
-- Environment: USSD_SUBSCRIBERS (default 10000), USSD_CODE (default *123#),
-- USSD_INPUTS (default "1,1"; "" for first hops only, each dialogue then abandoned).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  subscribers = tonumber(os.getenv("USSD_SUBSCRIBERS") or "10000")
  code = os.getenv("USSD_CODE") or "*123#"
  inputs = {}
  for s in string.gmatch(os.getenv("USSD_INPUTS") or "1,1", "[^,]+") do
    table.insert(inputs, s)
  end
  session = 0
  seq = 0
  hop = 0
  text = ""
  phone = ""
  bad = 0
  math.randomseed(id * 7919 + os.time())
  -- Session ids differ from one wrk run to the next: a reused id is a retry of an ended
  -- dialogue to the gateway, answered from its tombstone.
  run = math.random(0, 1073741823)
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

local function urlencode(s)
  return (string.gsub(s, "[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  if hop == 0 then
    session = session + 1
    -- A new dial supersedes the same number's live dialogue: threads never share a number
    -- (thread t dials t, t + 1024, t + 2048, ...; up to 1024 threads).
    if #inputs == 0 then
      -- First hops only: a thread's connections share its state, so its requests overlap;
      -- each thread dials its own numbers in turn (thread t: t, t + T, t + 2T, ... with T =
      -- USSD_THREADS), a number again only once all of the thread's others were dialled.
      local stride = tonumber(os.getenv("USSD_THREADS") or "1024")
      seq = seq + 1
      phone = string.format("2547%08d", 10000000 + (id + stride * seq) % subscribers)
    else
      local span = math.max(1, math.floor(subscribers / 1024)) * 1024
      phone = string.format("2547%08d", 10000000 + (id + 1024 * math.random(0, span / 1024 - 1)) % span)
    end
    text = ""
  elseif hop == 1 then
    text = inputs[1]
  else
    text = text .. "*" .. inputs[hop]
  end
  local body = "sessionId=wrk-" .. run .. "-" .. id .. "-" .. session .. "&serviceCode=" .. urlencode(code) ..
    "&phoneNumber=" .. phone .. "&networkCode=63902&text=" .. urlencode(text)
  return wrk.format("POST", "/ussd", nil, body)
end

function response(status, headers, body)
  -- With no inputs (USSD_INPUTS=""), each dialogue is its first hop only, left on the home
  -- menu (CON) and abandoned: the next request dials a new one.
  local want = (hop == #inputs and #inputs > 0) and "END " or "CON "
  if status ~= 200 or string.sub(body, 1, 4) ~= want then
    bad = bad + 1
  end
  hop = (hop + 1) % (#inputs + 1)
end

function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do
    b = b + (t:get("bad") or 0)
  end
  io.write(string.format("unexpected answers: %d\n", b))
end
