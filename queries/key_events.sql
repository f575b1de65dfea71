/*
name: key_events
summary: Every call made with the keys in the window, oldest first - the full timeline (the playbook's first query, with partition bounds).
params:
  access_key_ids: {type: array(varchar), example: [AKIA30BEZSJBVKOFKZW0]}
  exclude_ips: {type: array(varchar), default: [], example: [203.0.113.77], description: "calls from these IPs are left out: the key owner's own network, so an investigation keeps only the attacker's use of a shared key"}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  event_time: {type: varchar}
  event_source: {type: varchar}
  event_name: {type: varchar}
  aws_region: {type: varchar}
  source_ip: {type: varchar}
  user_agent: {type: varchar}
  access_key_id: {type: varchar}
  principal_arn: {type: varchar}
  error_code: {type: varchar}
  request_parameters: {type: varchar, description: JSON text as logged}
  response_elements: {type: varchar, description: JSON text as logged}
  event_id: {type: varchar}
*/
SELECT
    eventtime AS event_time,
    eventsource AS event_source,
    eventname AS event_name,
    awsregion AS aws_region,
    sourceipaddress AS source_ip,
    useragent AS user_agent,
    useridentity.accesskeyid AS access_key_id,
    useridentity.arn AS principal_arn,
    errorcode AS error_code,
    requestparameters AS request_parameters,
    responseelements AS response_elements,
    eventid AS event_id
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
    AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
ORDER BY event_time, event_id
