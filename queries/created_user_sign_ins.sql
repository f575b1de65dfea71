/*
name: created_user_sign_ins
summary: Console sign-ins by the IAM users the attacker's keys created (CreateUser in persistence_events) - made with a password and no access key, so no query scoped by key sees them; rows in the shape of persistence_events, category sign_in.
params:
  user_names: {type: array(varchar), example: [malicious-iam-user], description: the users the keys created}
  account_ids: {type: array(varchar), example: ["229654561268"], description: the accounts they were created in}
  exclude_ips: {type: array(varchar), default: [], example: [203.0.113.77], description: "sign-ins from these IPs are left out, as persistence_events leaves out the owner's network"}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  event_time: {type: varchar}
  event_source: {type: varchar}
  event_name: {type: varchar}
  category: {type: varchar, description: always sign_in}
  target: {type: varchar, description: the user who signed in}
  detail: {type: varchar, description: "whether MFA was used, as CloudTrail logs it (MFA used: Yes / No)"}
  aws_region: {type: varchar}
  source_ip: {type: varchar}
  user_agent: {type: varchar}
  access_key_id: {type: varchar, description: null - a console sign-in uses no access key}
  principal_arn: {type: varchar}
  error_code: {type: varchar, description: "null when the sign-in succeeded; the error, or Failure as responseElements.ConsoleLogin says, when it did not"}
  request_parameters: {type: varchar, description: JSON text as logged}
  event_id: {type: varchar}
*/
SELECT
    eventtime AS event_time,
    eventsource AS event_source,
    eventname AS event_name,
    'sign_in' AS category,
    useridentity.username AS target,
    'MFA used: ' || coalesce(json_extract_scalar(additionaleventdata, '$.MFAUsed'), 'unknown') AS detail,
    awsregion AS aws_region,
    sourceipaddress AS source_ip,
    useragent AS user_agent,
    useridentity.accesskeyid AS access_key_id,
    useridentity.arn AS principal_arn,
    coalesce(errorcode, nullif(json_extract_scalar(responseelements, '$.ConsoleLogin'), 'Success')) AS error_code,
    requestparameters AS request_parameters,
    eventid AS event_id
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND eventsource = 'signin.amazonaws.com'
    AND eventname = 'ConsoleLogin'
    AND useridentity.type = 'IAMUser'
    AND contains(:user_names, useridentity.username)
    AND contains(:account_ids, coalesce(useridentity.accountid, recipientaccountid))
    AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
ORDER BY event_time, event_id
