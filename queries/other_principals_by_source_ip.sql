/*
name: other_principals_by_source_ip
summary: Activity from the attacker's source IPs by principals other than the given keys - other keys or users the attacker also holds.
params:
  source_ips: {type: array(varchar), example: [200.249.253.51]}
  access_key_ids: {type: array(varchar), example: [AKIAWOGXN38MFN92ING5], description: the keys already known (left out)}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  source_ip: {type: varchar}
  principal_arn: {type: varchar}
  principal_type: {type: varchar}
  access_key_id: {type: varchar, description: null for console sign-ins and other calls without a key}
  account_id: {type: varchar}
  event_count: {type: bigint}
  error_count: {type: bigint}
  event_names: {type: json, description: distinct event names, sorted}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
SELECT
    sourceipaddress AS source_ip,
    useridentity.arn AS principal_arn,
    useridentity.type AS principal_type,
    useridentity.accesskeyid AS access_key_id,
    max(coalesce(useridentity.accountid, recipientaccountid)) AS account_id,
    count(*) AS event_count,
    count(errorcode) AS error_count,
    json_format(CAST(array_sort(array_agg(DISTINCT eventname) FILTER (WHERE eventname IS NOT NULL)) AS JSON)) AS event_names,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:source_ips, sourceipaddress)
    AND NOT contains(:access_key_ids, coalesce(useridentity.accesskeyid, ''))
GROUP BY sourceipaddress, useridentity.arn, useridentity.type, useridentity.accesskeyid
ORDER BY first_seen_at, source_ip, principal_arn
