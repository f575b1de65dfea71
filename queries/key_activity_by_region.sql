/*
name: key_activity_by_region
summary: The keys' calls grouped by AWS region - an attacker often works in regions the owner never uses.
params:
  access_key_ids: {type: array(varchar), example: [AKIA30BEZSJBVKOFKZW0]}
  exclude_ips: {type: array(varchar), default: [], example: [203.0.113.77], description: "calls from these IPs are left out: the key owner's own network, so an investigation keeps only the attacker's use of a shared key"}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  aws_region: {type: varchar, description: awsRegion of the call (global services log us-east-1)}
  event_count: {type: bigint}
  error_count: {type: bigint}
  event_names: {type: json, description: distinct event names, sorted}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
SELECT
    awsregion AS aws_region,
    count(*) AS event_count,
    count(errorcode) AS error_count,
    json_format(CAST(array_sort(array_agg(DISTINCT eventname) FILTER (WHERE eventname IS NOT NULL)) AS JSON)) AS event_names,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
    AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
GROUP BY awsregion
ORDER BY event_count DESC, aws_region
