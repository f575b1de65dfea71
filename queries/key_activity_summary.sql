/*
name: key_activity_summary
summary: One row per access key in the window - who it belongs to, how much it did, from how many IPs and regions, first and last use.
params:
  access_key_ids: {type: array(varchar), example: [AKIA30BEZSJBVKOFKZW0]}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  access_key_id: {type: varchar}
  principal_type: {type: varchar, description: userIdentity.type (IAMUser, AssumedRole, FederatedUser, Root)}
  principal_arns: {type: json, description: distinct userIdentity.arn values, sorted}
  account_id: {type: varchar}
  event_count: {type: bigint}
  error_count: {type: bigint, description: calls with an errorCode}
  source_ip_count: {type: bigint}
  region_count: {type: bigint}
  event_name_count: {type: bigint}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
SELECT
    useridentity.accesskeyid AS access_key_id,
    max(useridentity.type) AS principal_type,
    json_format(CAST(array_sort(array_agg(DISTINCT useridentity.arn) FILTER (WHERE useridentity.arn IS NOT NULL)) AS JSON)) AS principal_arns,
    max(coalesce(useridentity.accountid, recipientaccountid)) AS account_id,
    count(*) AS event_count,
    count(errorcode) AS error_count,
    count(DISTINCT sourceipaddress) AS source_ip_count,
    count(DISTINCT awsregion) AS region_count,
    count(DISTINCT eventname) AS event_name_count,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
GROUP BY useridentity.accesskeyid
ORDER BY first_seen_at, access_key_id
