/*
name: key_activity_after
summary: What the keys still did at or after a time (containment check) - grouped by call, source IP and error, so denied attempts show as such.
params:
  access_key_ids: {type: array(varchar), example: [AKIA30BEZSJBVKOFKZW0]}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive); the day of after_time or earlier}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  after_time: {type: timestamp, example: "2024-07-30T21:53:00Z", description: e.g. when the key was deactivated (inclusive)}
columns:
  access_key_id: {type: varchar}
  event_source: {type: varchar}
  event_name: {type: varchar}
  source_ip: {type: varchar}
  error_code: {type: varchar, description: null when the call succeeded}
  call_count: {type: bigint}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
SELECT
    useridentity.accesskeyid AS access_key_id,
    eventsource AS event_source,
    eventname AS event_name,
    sourceipaddress AS source_ip,
    errorcode AS error_code,
    count(*) AS call_count,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :after_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
GROUP BY useridentity.accesskeyid, eventsource, eventname, sourceipaddress, errorcode
ORDER BY first_seen_at, access_key_id, event_name
