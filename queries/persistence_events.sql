/*
name: persistence_events
summary: Calls by the keys that give an attacker a way back in or blind the defenders - IAM and STS credentials, Lambda (matched by prefix, as CloudTrail versions its names), EC2 access, IdPs, MFA, logging and detection changes - with the policy attached or written named in detail.
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
  category: {type: varchar, description: "identity, credentials, compute, logging, storage, organization or model_access (created_user_sign_ins adds sign_in)"}
  target: {type: varchar, description: the user, role, function, key pair, group, trail, ... named in the request, when there is one}
  detail: {type: varchar, description: "the policy by name for Attach*Policy and Put*PermissionsBoundary (the last part of its ARN, e.g. AdministratorAccess), Put*Policy and CreatePolicy; else null"}
  aws_region: {type: varchar}
  source_ip: {type: varchar}
  user_agent: {type: varchar}
  access_key_id: {type: varchar}
  principal_arn: {type: varchar}
  error_code: {type: varchar, description: null when the call succeeded (an attempt is still worth knowing)}
  request_parameters: {type: varchar, description: JSON text as logged}
  event_id: {type: varchar}
*/
SELECT
    eventtime AS event_time,
    eventsource AS event_source,
    eventname AS event_name,
    CASE
        WHEN eventsource = 'sts.amazonaws.com'
            OR eventname IN ('CreateAccessKey', 'UpdateAccessKey', 'CreateLoginProfile', 'UpdateLoginProfile',
                             'UploadSSHPublicKey', 'CreateServiceSpecificCredential', 'UploadSigningCertificate')
            OR eventname LIKE '%MFADevice' THEN 'credentials'
        WHEN eventsource IN ('iam.amazonaws.com', 'rolesanywhere.amazonaws.com') THEN 'identity'
        WHEN eventsource IN ('cloudtrail.amazonaws.com', 'guardduty.amazonaws.com', 'config.amazonaws.com',
                             'access-analyzer.amazonaws.com', 'securityhub.amazonaws.com',
                             'route53resolver.amazonaws.com')
            OR eventname IN ('DeleteFlowLogs', 'PutBucketLifecycle', 'PutModelInvocationLoggingConfiguration',
                             'DeleteModelInvocationLoggingConfiguration') THEN 'logging'
        WHEN eventsource IN ('s3.amazonaws.com', 'kms.amazonaws.com') THEN 'storage'
        WHEN eventsource = 'organizations.amazonaws.com' THEN 'organization'
        WHEN eventsource = 'bedrock.amazonaws.com' THEN 'model_access'
        ELSE 'compute'
    END AS category,
    coalesce(
        json_extract_scalar(requestparameters, '$.userName'),
        json_extract_scalar(requestparameters, '$.roleName'),
        json_extract_scalar(requestparameters, '$.groupName'),
        json_extract_scalar(requestparameters, '$.policyArn'),
        json_extract_scalar(requestparameters, '$.functionName'),
        json_extract_scalar(requestparameters, '$.layerName'),
        json_extract_scalar(requestparameters, '$.keyName'),
        json_extract_scalar(requestparameters, '$.groupId'),
        json_extract_scalar(requestparameters, '$.instanceId'),
        json_extract_scalar(requestparameters, '$.instanceProfileName'),
        json_extract_scalar(requestparameters, '$.virtualMFADeviceName'),
        json_extract_scalar(requestparameters, '$.serialNumber'),
        json_extract_scalar(requestparameters, '$.sAMLProviderArn'),
        json_extract_scalar(requestparameters, '$.openIDConnectProviderArn'),
        json_extract_scalar(requestparameters, '$.url'),
        json_extract_scalar(requestparameters, '$.trailName'),
        json_extract_scalar(requestparameters, '$.detectorId'),
        json_extract_scalar(requestparameters, '$.configurationRecorderName'),
        json_extract_scalar(requestparameters, '$.analyzerName'),
        json_extract_scalar(requestparameters, '$.resolverQueryLogConfigId'),
        json_extract_scalar(requestparameters, '$.bucketName'),
        json_extract_scalar(requestparameters, '$.keyId'),
        json_extract_scalar(requestparameters, '$.name'),
        json_extract_scalar(requestparameters, '$.target')
    ) AS target,
    CASE
        WHEN eventname LIKE 'Attach%Policy' THEN
            regexp_extract(json_extract_scalar(requestparameters, '$.policyArn'), '[^/]+$')
        WHEN eventname LIKE 'Put%Policy' OR eventname = 'CreatePolicy' THEN
            json_extract_scalar(requestparameters, '$.policyName')
        WHEN eventname LIKE 'Put%PermissionsBoundary' THEN
            regexp_extract(json_extract_scalar(requestparameters, '$.permissionsBoundary'), '[^/]+$')
    END AS detail,
    awsregion AS aws_region,
    sourceipaddress AS source_ip,
    useragent AS user_agent,
    useridentity.accesskeyid AS access_key_id,
    useridentity.arn AS principal_arn,
    errorcode AS error_code,
    requestparameters AS request_parameters,
    eventid AS event_id
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
    AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
    AND (
        (eventsource = 'iam.amazonaws.com' AND eventname IN (
            'CreateUser', 'CreateRole', 'UpdateRole', 'CreateGroup', 'AddUserToGroup',
            'CreateAccessKey', 'UpdateAccessKey', 'CreateLoginProfile', 'UpdateLoginProfile',
            'AttachUserPolicy', 'AttachRolePolicy', 'AttachGroupPolicy',
            'PutUserPolicy', 'PutRolePolicy', 'PutGroupPolicy',
            'CreatePolicy', 'CreatePolicyVersion', 'SetDefaultPolicyVersion', 'UpdateAssumeRolePolicy',
            'PutUserPermissionsBoundary', 'DeleteUserPermissionsBoundary',
            'PutRolePermissionsBoundary', 'DeleteRolePermissionsBoundary',
            'CreateInstanceProfile', 'AddRoleToInstanceProfile',
            'CreateVirtualMFADevice', 'EnableMFADevice', 'DeactivateMFADevice', 'DeleteVirtualMFADevice',
            'ResyncMFADevice',
            'CreateSAMLProvider', 'UpdateSAMLProvider', 'CreateOpenIDConnectProvider',
            'UpdateOpenIDConnectProviderThumbprint', 'AddClientIDToOpenIDConnectProvider',
            'UploadSSHPublicKey', 'CreateServiceSpecificCredential', 'UploadSigningCertificate'))
        OR (eventsource = 'sts.amazonaws.com' AND eventname IN ('GetFederationToken', 'GetSessionToken'))
        OR (eventsource = 'lambda.amazonaws.com' AND (
            eventname LIKE 'CreateFunction%'
            OR eventname LIKE 'UpdateFunctionCode%'
            OR eventname LIKE 'UpdateFunctionConfiguration%'
            OR eventname LIKE 'AddPermission%'
            OR eventname LIKE 'CreateEventSourceMapping%'
            OR eventname LIKE 'PublishLayerVersion%'
            OR eventname LIKE 'AddLayerVersionPermission%'
            OR eventname LIKE 'CreateFunctionUrlConfig%'
            OR eventname LIKE 'UpdateFunctionUrlConfig%'))
        OR (eventsource = 'ec2.amazonaws.com' AND eventname IN (
            'CreateKeyPair', 'ImportKeyPair', 'CreateSecurityGroup', 'AuthorizeSecurityGroupIngress',
            'ModifyInstanceAttribute', 'EnableSerialConsoleAccess', 'DeleteFlowLogs'))
        OR (eventsource = 'ec2-instance-connect.amazonaws.com'
            AND eventname IN ('SendSSHPublicKey', 'SendSerialConsoleSSHPublicKey'))
        OR (eventsource = 'ssm.amazonaws.com' AND eventname IN ('SendCommand', 'StartSession'))
        OR (eventsource = 'rolesanywhere.amazonaws.com'
            AND eventname IN ('CreateTrustAnchor', 'UpdateTrustAnchor', 'CreateProfile'))
        OR (eventsource = 'cloudtrail.amazonaws.com' AND eventname IN (
            'StopLogging', 'DeleteTrail', 'UpdateTrail', 'CreateTrail', 'PutEventSelectors',
            'PutInsightSelectors', 'DeleteEventDataStore', 'StopEventDataStoreIngestion'))
        OR (eventsource = 'guardduty.amazonaws.com' AND eventname IN (
            'DeleteDetector', 'UpdateDetector', 'DeleteMembers', 'DisassociateMembers',
            'DisassociateFromMasterAccount', 'DisassociateFromAdministratorAccount',
            'StopMonitoringMembers', 'CreateIPSet', 'UpdateIPSet', 'CreateFilter', 'UpdateFilter',
            'DeletePublishingDestination'))
        OR (eventsource = 'config.amazonaws.com' AND eventname IN (
            'StopConfigurationRecorder', 'DeleteConfigurationRecorder', 'DeleteDeliveryChannel'))
        OR (eventsource = 'access-analyzer.amazonaws.com' AND eventname = 'DeleteAnalyzer')
        OR (eventsource = 'securityhub.amazonaws.com'
            AND eventname IN ('DisableSecurityHub', 'DisableImportFindingsForProduct'))
        OR (eventsource = 'route53resolver.amazonaws.com'
            AND eventname IN ('DeleteResolverQueryLogConfig', 'DisassociateResolverQueryLogConfig'))
        OR (eventsource = 's3.amazonaws.com' AND eventname IN (
            'PutBucketPolicy', 'PutBucketAcl', 'PutBucketLifecycle', 'PutBucketReplication',
            'DeleteBucketPublicAccessBlock', 'PutBucketPublicAccessBlock'))
        OR (eventsource = 'kms.amazonaws.com'
            AND eventname IN ('PutKeyPolicy', 'ScheduleKeyDeletion', 'DisableKey', 'CreateGrant'))
        OR (eventsource = 'organizations.amazonaws.com' AND eventname IN ('LeaveOrganization', 'CreateAccount'))
        OR (eventsource = 'bedrock.amazonaws.com' AND eventname IN (
            'PutUseCaseForModelAccess', 'PutFoundationModelEntitlement', 'CreateFoundationModelAgreement',
            'PutModelInvocationLoggingConfiguration', 'DeleteModelInvocationLoggingConfiguration'))
    )
ORDER BY event_time, event_id
