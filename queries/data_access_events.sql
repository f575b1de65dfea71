/*
name: data_access_events
summary: Reads of sensitive data by the keys, grouped by call and resource - the calls keyresponse/intel/taxonomy.py classifies as data (S3 objects, secrets, SSM parameters, KMS decrypts, DynamoDB items, instance passwords and user data, snapshot or image sharing), bound as data_calls.
params:
  access_key_ids: {type: array(varchar), example: [AKIA1JMTHE9ZMZMWG0MG]}
  data_calls:
    type: array(varchar)
    example: [secretsmanager.amazonaws.com:GetSecretValue, s3.amazonaws.com:GetObject, "ec2.amazonaws.com:DescribeInstanceAttribute:userData"]
    description: >-
      the data calls, as eventsource:EventName, or eventsource:EventName:attribute for a call that reads data
      for one value of its attribute request parameter only. keyresponse.intel.taxonomy.data_access_calls()
      is the one list and the investigation binds it; the default is that list written out
      (tests/queries/test_data_access_events.py keeps the two equal) for a caller that binds none, such as
      a run recorded before this param existed
    default:
      - athena.amazonaws.com:GetQueryResults
      - codecommit.amazonaws.com:GitPull
      - dynamodb.amazonaws.com:BatchGetItem
      - dynamodb.amazonaws.com:ExportTableToPointInTime
      - dynamodb.amazonaws.com:GetItem
      - dynamodb.amazonaws.com:Query
      - dynamodb.amazonaws.com:Scan
      - ec2.amazonaws.com:DescribeInstanceAttribute:userData
      - ec2.amazonaws.com:GetPasswordData
      - ec2.amazonaws.com:ModifyImageAttribute
      - ec2.amazonaws.com:ModifySnapshotAttribute
      - ecr.amazonaws.com:BatchGetImage
      - ecr.amazonaws.com:GetDownloadUrlForLayer
      - kms.amazonaws.com:Decrypt
      - rds.amazonaws.com:ModifyDBClusterSnapshotAttribute
      - rds.amazonaws.com:ModifyDBSnapshotAttribute
      - s3.amazonaws.com:CopyObject
      - s3.amazonaws.com:GetObject
      - s3.amazonaws.com:PutBucketReplication
      - s3.amazonaws.com:SelectObjectContent
      - secretsmanager.amazonaws.com:BatchGetSecretValue
      - secretsmanager.amazonaws.com:GetSecretValue
      - ssm.amazonaws.com:GetParameter
      - ssm.amazonaws.com:GetParameterHistory
      - ssm.amazonaws.com:GetParameters
      - ssm.amazonaws.com:GetParametersByPath
  exclude_ips: {type: array(varchar), default: [], example: [203.0.113.77], description: "calls from these IPs are left out: the key owner's own network, so an investigation keeps only the attacker's use of a shared key"}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  event_source: {type: varchar}
  event_name: {type: varchar}
  resource: {type: varchar, description: "bucket/key, secret id, parameter name(s), KMS key, table, instance, snapshot or image; JSON text when the request names several"}
  is_decrypted: {type: boolean, description: SSM withDecryption was requested}
  access_key_id: {type: varchar}
  call_count: {type: bigint}
  error_count: {type: bigint}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
WITH reads AS (
    SELECT
        eventsource,
        eventname,
        CASE
            WHEN eventsource = 's3.amazonaws.com' THEN
                coalesce(json_extract_scalar(requestparameters, '$.bucketName'), '') || '/'
                || coalesce(json_extract_scalar(requestparameters, '$.key'), '')
            WHEN eventname = 'GetParameters' THEN json_format(json_extract(requestparameters, '$.names'))
            WHEN eventname = 'BatchGetSecretValue' THEN coalesce(
                json_format(json_extract(requestparameters, '$.secretIdList')),
                json_format(json_extract(requestparameters, '$.filters')))
            ELSE coalesce(
                json_extract_scalar(requestparameters, '$.secretId'),
                json_extract_scalar(requestparameters, '$.name'),
                json_extract_scalar(requestparameters, '$.path'),
                json_extract_scalar(requestparameters, '$.keyId'),
                json_extract_scalar(requestparameters, '$.tableName'),
                json_extract_scalar(requestparameters, '$.tableArn'),
                json_extract_scalar(requestparameters, '$.instanceId'),
                json_extract_scalar(requestparameters, '$.snapshotId'),
                json_extract_scalar(requestparameters, '$.imageId'),
                json_extract_scalar(requestparameters, '$.dBSnapshotIdentifier'),
                json_extract_scalar(requestparameters, '$.dBClusterSnapshotIdentifier'))
        END AS resource,
        coalesce(json_extract_scalar(requestparameters, '$.withDecryption') = 'true', false) AS is_decrypted,
        useridentity.accesskeyid AS access_key_id,
        errorcode,
        eventtime
    FROM cloudtrail
    WHERE "timestamp" BETWEEN :start_day AND :end_day
        AND eventtime >= :start_time
        AND eventtime < :end_time
        AND contains(:access_key_ids, useridentity.accesskeyid)
        AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
        AND (
            contains(:data_calls, eventsource || ':' || eventname)
            OR contains(:data_calls,
                        eventsource || ':' || eventname || ':' || json_extract_scalar(requestparameters, '$.attribute'))
        )
)
SELECT
    eventsource AS event_source,
    eventname AS event_name,
    resource,
    is_decrypted,
    access_key_id,
    count(*) AS call_count,
    count(errorcode) AS error_count,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM reads
GROUP BY eventsource, eventname, resource, is_decrypted, access_key_id
ORDER BY first_seen_at, event_name, resource
