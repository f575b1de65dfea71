/*
name: key_creation
summary: The event that created the keys - CreateAccessKey for a long-term key, GetSessionToken, GetFederationToken or AssumeRole* for a session - whoever made it (the owner, an administrator, a root session), found by the key id in its response.
params:
  access_key_ids: {type: array(varchar), example: [AKIAXAFZN8JEPF6L682H], description: the keys whose creation to find (the investigated key)}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  access_key_id: {type: varchar, description: the key that was created}
  event_time: {type: varchar}
  event_source: {type: varchar}
  event_name: {type: varchar}
  user_name: {type: varchar, description: "the user the key belongs to (CreateAccessKey), or the federated name / role session"}
  created_by_arn: {type: varchar, description: "who made the call (arn:aws:iam::<account>:root for a root session)"}
  created_by_type: {type: varchar, description: "IAMUser, Root, AssumedRole, FederatedUser, AWSService, ..."}
  created_by_access_key_id: {type: varchar, description: the key the call was made with (null when none was logged)}
  account_id: {type: varchar}
  aws_region: {type: varchar}
  source_ip: {type: varchar}
  user_agent: {type: varchar}
  event_id: {type: varchar}
*/
WITH minted AS (
    SELECT
        coalesce(
            json_extract_scalar(responseelements, '$.accessKey.accessKeyId'),
            json_extract_scalar(responseelements, '$.credentials.accessKeyId')) AS access_key_id,
        coalesce(
            json_extract_scalar(responseelements, '$.accessKey.userName'),
            json_extract_scalar(requestparameters, '$.userName'),
            json_extract_scalar(responseelements, '$.federatedUser.arn'),
            json_extract_scalar(responseelements, '$.assumedRoleUser.arn'),
            useridentity.username) AS user_name,
        eventtime,
        eventsource,
        eventname,
        useridentity.arn AS created_by_arn,
        useridentity.type AS created_by_type,
        useridentity.accesskeyid AS created_by_access_key_id,
        coalesce(recipientaccountid, useridentity.accountid) AS account_id,
        awsregion,
        sourceipaddress,
        useragent,
        eventid
    FROM cloudtrail
    WHERE "timestamp" BETWEEN :start_day AND :end_day
        AND eventtime >= :start_time
        AND eventtime < :end_time
        AND errorcode IS NULL
        AND (
            (eventsource = 'iam.amazonaws.com' AND eventname = 'CreateAccessKey'
                AND contains(:access_key_ids, json_extract_scalar(responseelements, '$.accessKey.accessKeyId')))
            OR (eventsource = 'sts.amazonaws.com'
                AND contains(:access_key_ids, json_extract_scalar(responseelements, '$.credentials.accessKeyId')))
        )
)
SELECT
    access_key_id,
    eventtime AS event_time,
    eventsource AS event_source,
    eventname AS event_name,
    user_name,
    created_by_arn,
    created_by_type,
    created_by_access_key_id,
    account_id,
    awsregion AS aws_region,
    sourceipaddress AS source_ip,
    useragent AS user_agent,
    eventid AS event_id
FROM minted
ORDER BY event_time, event_id
