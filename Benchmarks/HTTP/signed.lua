-- wrk script: requests signed ahead of time by SignRequests (one "nonce sig" line each, after a
-- first line with the shared x-ts). Environment: QSTORE_SIGNED (the file), QSTORE_SQUID,
-- QSTORE_KIND (get | put: the 1 KiB block bodies SignRequests signed), QSTORE_PATH_QUERY,
-- QSTORE_RUN (the prefix SignRequests was given, so one run's blocks differ from another's).
local file = os.getenv("QSTORE_SIGNED")
local squid = os.getenv("QSTORE_SQUID")
local kind = os.getenv("QSTORE_KIND")
local target = os.getenv("QSTORE_PATH_QUERY")
local run = os.getenv("QSTORE_RUN") or "" 
local filler = string.rep("x", 1000)
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  lines = {}
  for line in io.lines(file) do lines[#lines + 1] = line end
  ts = lines[1]
  -- Thread `id` of `count` sends lines id+2, id+2+count, …: no nonce is sent twice.
  nextLine = id + 2
  step = tonumber(os.getenv("QSTORE_THREADS") or "1")
end

request = function()
  local line = lines[nextLine]
  if line == nil then return wrk.format("GET", "/exhausted") end
  local index = nextLine - 2
  nextLine = nextLine + step
  local nonce, sig = line:match("^(%S+) (%S+)$")
  local headers = { ["x-squid-id"] = squid, ["x-ts"] = ts, ["x-nonce"] = nonce, ["x-sig"] = sig }
  if kind == "put" then
    local payload = string.sub(run .. string.format("%016d-", index) .. filler, 1, 1024)
    local body = "--qstorebench\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\nContent-Type: application/octet-stream\r\n\r\n"
      .. payload .. "\r\n--qstorebench--\r\n"
    headers["Content-Type"] = "multipart/form-data; boundary=qstorebench"
    local path, query = target:match("^([^?]+)%??(.*)$")
    return wrk.format("POST", target, headers, body)
  end
  return wrk.format("GET", target, headers)
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
