#!/bin/bash
# Interleaved A/B of bench queue: base (previous main) vs new, same private Redis, flushed between runs.
PORT=${PORT:-48901}
OUT=${OUT:-/tmp/ab2}
mkdir -p $OUT
redis-server --port $PORT --save '' --appendonly no --daemonize yes --logfile $OUT/redis.log
sleep 1
for round in ${ROUNDS:-1 2 3}; do
  for bin in base new; do
    redis-cli -p $PORT flushall >/dev/null
    redis-cli -p $PORT config resetstat >/dev/null
    /tmp/cw-$bin bench queue --no-peer --jobs 100000 --concurrency 256 --latency-samples 2000 --json --redis-url redis://127.0.0.1:$PORT/ > $OUT/$bin-$round.json 2>$OUT/$bin-$round.err
    redis-cli -p $PORT info commandstats | grep -E 'evalsha|cmdstat_eval:' > $OUT/$bin-$round.stats
  done
done
redis-cli -p $PORT shutdown nosave
echo finished > $OUT/done
