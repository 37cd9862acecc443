-- wrk script of bench/run: alternates GET /hello and GET /insert on every connection, and
-- prints one WRKJSON line at the end that gohook-bench reads (requests, duration, every kind of
-- error, latency percentiles in microseconds).
local n = 0

request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/insert")
  end
  return wrk.format("GET", "/hello")
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
