/*
name: derived_credentials
summary: Credentials the keys minted - access keys from CreateAccessKey and sessions from GetSessionToken, GetFederationToken and AssumeRole - with the creating event, the parent key and the principal; rerun with the new ids until none appear.
params:
  access_key_ids: {type: array(varchar), example: [AKIA6V1GNZTT65XQH36M]}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  access_key_id: {type: varchar, description: the new key (AKIA...) or session key (ASIA...)}
  kind: {type: varchar, description: access_key or session}
  created_by_event: {type: varchar}
  created_at: {type: varchar}
  parent_access_key_id: {type: varchar, description: the key that made the call}
  principal_name: {type: varchar, description: the user the key belongs to, the role assumed or the federated name}
  principal_arn: {type: varchar, description: "for a new access key, built as arn:aws:iam::<account>:user/<name> (the user's path is not logged)"}
  expires_at: {type: varchar, description: the session's expiration as logged (CloudTrail writes e.g. "Jul 30, 2024, 10:53:13 PM")}
  source_ip: {type: varchar}
  event_id: {type: varchar}
*/
WITH minted AS (
    SELECT
        CASE
            WHEN eventname = 'CreateAccessKey' THEN json_extract_scalar(responseelements, '$.accessKey.accessKeyId')
            ELSE json_extract_scalar(responseelements, '$.credentials.accessKeyId')
        END AS access_key_id,
        CASE WHEN eventname = 'CreateAccessKey' THEN 'access_key' ELSE 'session' END AS kind,
        eventname,
        eventtime,
        useridentity.accesskeyid AS parent_access_key_id,
        CASE eventname
            WHEN 'CreateAccessKey' THEN coalesce(
                json_extract_scalar(responseelements, '$.accessKey.userName'),
                json_extract_scalar(requestparameters, '$.userName'),
                useridentity.username)
            WHEN 'AssumeRole' THEN json_extract_scalar(requestparameters, '$.roleArn')
            WHEN 'GetFederationToken' THEN json_extract_scalar(requestparameters, '$.name')
            ELSE coalesce(useridentity.username, useridentity.arn)
        END AS principal_name,
        CASE eventname
            WHEN 'CreateAccessKey' THEN 'arn:aws:iam::' || coalesce(useridentity.accountid, recipientaccountid)
                || ':user/' || coalesce(
                    json_extract_scalar(responseelements, '$.accessKey.userName'),
                    json_extract_scalar(requestparameters, '$.userName'),
                    useridentity.username)
            WHEN 'AssumeRole' THEN json_extract_scalar(responseelements, '$.assumedRoleUser.arn')
            WHEN 'GetFederationToken' THEN json_extract_scalar(responseelements, '$.federatedUser.arn')
            ELSE useridentity.arn
        END AS principal_arn,
        json_extract_scalar(responseelements, '$.credentials.expiration') AS expires_at,
        sourceipaddress,
        eventid
    FROM cloudtrail
    WHERE "timestamp" BETWEEN :start_day AND :end_day
        AND eventtime >= :start_time
        AND eventtime < :end_time
        AND contains(:access_key_ids, useridentity.accesskeyid)
        AND errorcode IS NULL
        AND (
            (eventsource = 'iam.amazonaws.com' AND eventname = 'CreateAccessKey')
            OR (eventsource = 'sts.amazonaws.com'
                AND eventname IN ('GetSessionToken', 'GetFederationToken', 'AssumeRole'))
        )
)
SELECT
    access_key_id,
    kind,
    eventname AS created_by_event,
    eventtime AS created_at,
    parent_access_key_id,
    principal_name,
    principal_arn,
    expires_at,
    sourceipaddress AS source_ip,
    eventid AS event_id
FROM minted
WHERE access_key_id IS NOT NULL
ORDER BY created_at, access_key_id
