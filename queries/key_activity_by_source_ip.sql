/*
name: key_activity_by_source_ip
summary: The keys' calls grouped by source IP - user agents, keys, first and last seen - to tell the owner's origins from unfamiliar ones.
params:
  access_key_ids: {type: array(varchar), example: [AKIA30BEZSJBVKOFKZW0]}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  source_ip: {type: varchar, description: sourceIPAddress as logged (may be a service name or not a valid IP)}
  event_count: {type: bigint}
  error_count: {type: bigint}
  user_agents: {type: json, description: distinct user agents, sorted}
  access_key_ids: {type: json, description: the keys seen from this IP, sorted}
  regions: {type: json, description: distinct awsRegion values, sorted}
  event_names: {type: json, description: distinct eventName values, sorted - the calls made from this IP}
  error_codes: {type: json, description: distinct errorCode values, sorted - AccessDenied and the like}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
SELECT
    sourceipaddress AS source_ip,
    count(*) AS event_count,
    count(errorcode) AS error_count,
    json_format(CAST(array_sort(array_agg(DISTINCT useragent) FILTER (WHERE useragent IS NOT NULL)) AS JSON)) AS user_agents,
    json_format(CAST(array_sort(array_agg(DISTINCT useridentity.accesskeyid)) AS JSON)) AS access_key_ids,
    json_format(CAST(array_sort(array_agg(DISTINCT awsregion) FILTER (WHERE awsregion IS NOT NULL)) AS JSON)) AS regions,
    json_format(CAST(array_sort(array_agg(DISTINCT eventname) FILTER (WHERE eventname IS NOT NULL)) AS JSON)) AS event_names,
    json_format(CAST(array_sort(array_agg(DISTINCT errorcode) FILTER (WHERE errorcode IS NOT NULL)) AS JSON)) AS error_codes,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
GROUP BY sourceipaddress
ORDER BY event_count DESC, source_ip
