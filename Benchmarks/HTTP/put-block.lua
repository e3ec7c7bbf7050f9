-- wrk script: POST /api/v0/block/put with a distinct 1 KiB block per request (QSTORE_PARTS
-- blocks per request, as file parts, when set: blocks/s = requests/s × parts).
-- The token comes from the environment (QSTORE_TOKEN); QSTORE_RUN (optional) makes one run's
-- blocks differ from another's.
local counter = 0
local boundary = "qstorebench"
local token = os.getenv("QSTORE_TOKEN")
local run = os.getenv("QSTORE_RUN") or "" 
local filler = string.rep("x", 1000)
local parts = tonumber(os.getenv("QSTORE_PARTS") or "1")

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local n = 0
request = function()
  local body = ""
  for i = 1, parts do
    n = n + 1
    local payload = run .. string.format("%08d-%08d-", id, n) .. filler
    payload = string.sub(payload, 1, 1024)
    body = body .. "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\nContent-Type: application/octet-stream\r\n\r\n"
      .. payload .. "\r\n"
  end
  body = body .. "--" .. boundary .. "--\r\n"
  local headers = {}
  headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  headers["Authorization"] = "Bearer " .. token
  return wrk.format("POST", "/api/v0/block/put?cid-codec=raw", headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
