-- wrk script for scripts/bench-api.sh: POST a JSON body with a bearer token, and print one JSON
-- line of results when done.
--   BODY   the request body (default {"function_name":"ping","kwargs":{}})
--   TOKEN  the bearer token (no Authorization header when empty)
wrk.method = "POST"
wrk.body = os.getenv("BODY") or '{"function_name":"ping","kwargs":{}}'
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- summary.duration and latency are in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local ms = function(us) return string.format("%.3f", us / 1000) end
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"requests_per_s":%.1f,'
      .. '"latency_ms":{"mean":%s,"p50":%s,"p90":%s,"p99":%s,"max":%s},'
      .. '"errors":{"non_2xx_3xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.requests, secs, summary.requests / secs,
    ms(latency.mean), ms(latency:percentile(50)), ms(latency:percentile(90)),
    ms(latency:percentile(99)), ms(latency.max),
    e.status, e.connect, e.read, e.write, e.timeout))
end
