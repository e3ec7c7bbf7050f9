-- wrk script: PUT /q/v1/index/bench/<key> {"cid": ...}, a distinct pointer per request (so the
-- updates are independent, as from many clients). QSTORE_TOKEN and QSTORE_TARGET (a stored CID)
-- come from the environment.
local counter = 0
local token = os.getenv("QSTORE_TOKEN")
local body = '{"cid":"' .. os.getenv("QSTORE_TARGET") .. '"}'

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local n = 0
request = function()
  n = n + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. token
  return wrk.format("PUT", string.format("/q/v1/index/bench/t%d-%d", id, n), headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx: %d\n", summary.errors.status))
end
