-- wrk script of bench/run for the fixed-rate phase when oha is not installed: the same
-- /hello–/insert mix, each connection pausing BENCH_DELAY_MS after every answer, so the offered
-- rate is about connections × 1000 / (delay + latency). Closed loop: queueing delay is not seen
-- the way oha --latency-correction sees it.
local n = 0
local d = tonumber(os.getenv("BENCH_DELAY_MS") or "10")

request = function()
  n = n + 1
  if n % 2 == 0 then
    return wrk.format("GET", "/insert")
  end
  return wrk.format("GET", "/hello")
end

delay = function()
  return d
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
