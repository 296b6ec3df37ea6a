"""CloudWatch Logs JSON filter patterns: CIS patterns verbatim, operators, errors, robustness."""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veilleur.rules.filter_pattern import compile_filter_pattern
from veilleur.rules.matcher import MatcherError

# --- realistic records (from the invictus-aws-dataset, trimmed) ----------------------------

API_CALL: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDATFQR7NSC5AU2ZV3IE",
        "arn": "arn:aws:iam::123837392027:user/bert-jan",
        "accountId": "123837392027",
        "accessKeyId": "AKIATFQR7NSC8Q4X20BJ",
        "userName": "bert-jan",
    },
    "eventTime": "2023-07-10T11:55:10Z",
    "eventSource": "iam.amazonaws.com",
    "eventName": "AttachRolePolicy",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "192.168.10.20",
    "userAgent": "aws-sdk-go/1.44.157 (go1.19.3; linux; amd64)",
    "requestParameters": {
        "roleName": "stratus-red-team-ec2-steal-credentials-role",
        "policyArn": "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    },
    "responseElements": None,
    "eventID": "edc26fa8-655a-4346-9e18-f79b0d9e25de",
    "readOnly": False,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "123837392027",
    "eventCategory": "Management",
}
CONSOLE_LOGIN_NO_MFA: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDATFQR7NSCYG26CT6RI",
        "arn": "arn:aws:iam::123837392027:user/stratus-red-team-nmfalu-gfjyeaypjt",
        "accountId": "123837392027",
        "userName": "stratus-red-team-nmfalu-gfjyeaypjt",
    },
    "eventTime": "2023-07-10T12:23:15Z",
    "eventSource": "signin.amazonaws.com",
    "eventName": "ConsoleLogin",
    "awsRegion": "us-east-1",
    "sourceIPAddress": "192.168.10.20",
    "requestParameters": None,
    "responseElements": {"ConsoleLogin": "Success"},
    "additionalEventData": {
        "LoginTo": "https://console.aws.amazon.com/console/home",
        "MobileVersion": "No",
        "MFAUsed": "No",
    },
    "eventID": "70e5932e-9022-4b38-837e-ca10dad94eb7",
    "readOnly": False,
    "eventType": "AwsConsoleSignIn",
    "recipientAccountId": "123837392027",
}
SERVICE_EVENT: dict[str, Any] = {
    "eventVersion": "1.08",
    "userIdentity": {"accountId": "123837392027", "invokedBy": "ec2.amazonaws.com"},
    "eventTime": "2023-07-10T11:55:23Z",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "SharedSnapshotVolumeCreated",
    "sourceIPAddress": "ec2.amazonaws.com",
    "eventID": "895dc875-cb08-45a5-b8c2-9158838741c0",
    "readOnly": False,
    "eventType": "AwsServiceEvent",
    "serviceEventDetails": {"snapshotId": "snap-0e83092ae538da583"},
}


DROP = object()


def rec(base: dict[str, Any] = API_CALL, **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level fields replaced (None value: kept as null;
    the DROP marker: removed)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


ROOT = {"type": "Root", "principalId": "123837392027", "arn": "arn:aws:iam::123837392027:root"}
FAILED_LOGIN = rec(
    CONSOLE_LOGIN_NO_MFA,
    userIdentity={"type": "IAMUser", "userName": "HIDDEN_DUE_TO_SECURITY_REASONS"},
    errorMessage="Failed authentication",
    responseElements={"ConsoleLogin": "Failure"},
)

# --- the 15 CIS patterns: AWS-FACTS.md verbatim, the others as the CIS benchmark publishes --

CIS: dict[str, tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = {
    "cis-root-usage": (
        '{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS '
        '&& $.eventType !="AwsServiceEvent"}',
        [rec(userIdentity=ROOT), rec(userIdentity=ROOT, eventType=DROP)],
        [
            rec(),
            rec(userIdentity={**ROOT, "invokedBy": "cloudtrail.amazonaws.com"}),
            rec(userIdentity=ROOT, eventType="AwsServiceEvent"),
            rec(userIdentity={**ROOT, "type": "root"}),  # case-sensitive
        ],
    ),
    "cis-unauthorized-api-calls": (
        '{($.errorCode="*UnauthorizedOperation") || ($.errorCode="AccessDenied*")}',
        [
            rec(errorCode="Client.UnauthorizedOperation"),
            rec(errorCode="AccessDenied"),
            rec(errorCode="AccessDeniedException"),
        ],
        [rec(), rec(errorCode="ThrottlingException"), rec(errorCode="accessdenied")],
    ),
    "cis-console-login-no-mfa": (
        '{($.eventName="ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && '
        '($.userIdentity.type="IAMUser") && ($.responseElements.ConsoleLogin="Success")}',
        [CONSOLE_LOGIN_NO_MFA, rec(CONSOLE_LOGIN_NO_MFA, additionalEventData=DROP)],
        [
            rec(CONSOLE_LOGIN_NO_MFA, additionalEventData={"MFAUsed": "Yes"}),
            FAILED_LOGIN,
            rec(CONSOLE_LOGIN_NO_MFA, userIdentity=ROOT),
        ],
    ),
    "cis-iam-policy-changes": (
        "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||"
        "($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||"
        "($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||"
        "($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||"
        "($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||"
        "($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||"
        "($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||"
        "($.eventName=DetachGroupPolicy)}",
        [rec(), rec(eventName="PutUserPolicy", errorCode="AccessDenied")],
        [rec(eventName="GetRolePolicy"), rec(eventName="AttachRolePolicyX")],
    ),
    "cis-cloudtrail-changes": (
        "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || "
        "($.eventName = DeleteTrail) || ($.eventName = StartLogging) || "
        "($.eventName = StopLogging) }",
        [rec(eventName="StopLogging", eventSource="cloudtrail.amazonaws.com")],
        [rec(eventName="DescribeTrails", eventSource="cloudtrail.amazonaws.com")],
    ),
    "cis-console-auth-failures": (
        '{($.eventName=ConsoleLogin) && ($.errorMessage="Failed authentication")}',
        [FAILED_LOGIN],
        [CONSOLE_LOGIN_NO_MFA, rec(FAILED_LOGIN, errorMessage="failed authentication")],
    ),
    "cis-kms-key-disable-delete": (
        "{($.eventSource = kms.amazonaws.com) && "
        "(($.eventName=DisableKey)||($.eventName=ScheduleKeyDeletion)) }",
        [rec(eventSource="kms.amazonaws.com", eventName="ScheduleKeyDeletion")],
        [
            rec(eventSource="kms.amazonaws.com", eventName="Decrypt"),
            rec(eventSource="other.amazonaws.com", eventName="DisableKey"),
        ],
    ),
    "cis-s3-bucket-policy-changes": (
        "{ ($.eventSource = s3.amazonaws.com) && (($.eventName = PutBucketAcl) || "
        "($.eventName = PutBucketPolicy) || ($.eventName = PutBucketCors) || "
        "($.eventName = PutBucketLifecycle) || ($.eventName = PutBucketReplication) || "
        "($.eventName = DeleteBucketPolicy) || ($.eventName = DeleteBucketCors) || "
        "($.eventName = DeleteBucketLifecycle) || ($.eventName = DeleteBucketReplication)) }",
        [rec(eventSource="s3.amazonaws.com", eventName="PutBucketPolicy")],
        [rec(eventSource="s3.amazonaws.com", eventName="GetBucketPolicy")],
    ),
    "cis-config-changes": (
        "{ ($.eventSource = config.amazonaws.com) && (($.eventName=StopConfigurationRecorder)||"
        "($.eventName=DeleteDeliveryChannel)||($.eventName=PutDeliveryChannel)||"
        "($.eventName=PutConfigurationRecorder)) }",
        [rec(eventSource="config.amazonaws.com", eventName="StopConfigurationRecorder")],
        [rec(eventSource="config.amazonaws.com", eventName="DescribeDeliveryChannels")],
    ),
    "cis-security-group-changes": (
        "{ ($.eventName = AuthorizeSecurityGroupIngress) || "
        "($.eventName = AuthorizeSecurityGroupEgress) || "
        "($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) "
        "|| ($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }",
        [rec(eventName="AuthorizeSecurityGroupIngress", eventSource="ec2.amazonaws.com")],
        [rec(eventName="DescribeSecurityGroups", eventSource="ec2.amazonaws.com")],
    ),
    "cis-nacl-changes": (
        "{ ($.eventName = CreateNetworkAcl) || ($.eventName = CreateNetworkAclEntry) || "
        "($.eventName = DeleteNetworkAcl) || ($.eventName = DeleteNetworkAclEntry) || "
        "($.eventName = ReplaceNetworkAclEntry) || ($.eventName = ReplaceNetworkAclAssociation) }",
        [rec(eventName="CreateNetworkAclEntry")],
        [rec(eventName="DescribeNetworkAcls")],
    ),
    "cis-network-gateway-changes": (
        "{ ($.eventName = CreateCustomerGateway) || ($.eventName = DeleteCustomerGateway) || "
        "($.eventName = AttachInternetGateway) || ($.eventName = CreateInternetGateway) || "
        "($.eventName = DeleteInternetGateway) || ($.eventName = DetachInternetGateway) }",
        [rec(eventName="AttachInternetGateway")],
        [rec(eventName="DescribeInternetGateways")],
    ),
    "cis-route-table-changes": (
        "{ ($.eventName = CreateRoute) || ($.eventName = CreateRouteTable) || "
        "($.eventName = ReplaceRoute) || ($.eventName = ReplaceRouteTableAssociation) || "
        "($.eventName = DeleteRouteTable) || ($.eventName = DeleteRoute) || "
        "($.eventName = DisassociateRouteTable) }",
        [rec(eventName="CreateRoute"), rec(eventName="DisassociateRouteTable")],
        [rec(eventName="AssociateRouteTable"), rec(eventName="DescribeRouteTables")],
    ),
    "cis-vpc-changes": (
        "{ ($.eventName = CreateVpc) || ($.eventName = DeleteVpc) || "
        "($.eventName = ModifyVpcAttribute) || ($.eventName = AcceptVpcPeeringConnection) || "
        "($.eventName = CreateVpcPeeringConnection) || ($.eventName = DeleteVpcPeeringConnection) "
        "|| ($.eventName = RejectVpcPeeringConnection) || ($.eventName = AttachClassicLinkVpc) || "
        "($.eventName = DetachClassicLinkVpc) || ($.eventName = DisableVpcClassicLink) || "
        "($.eventName = EnableVpcClassicLink) }",
        [rec(eventName="CreateVpc")],
        [rec(eventName="DescribeVpcs"), rec(eventName="createvpc")],
    ),
    "cis-organizations-changes": (
        '{ ($.eventSource = organizations.amazonaws.com) && (($.eventName = "AcceptHandshake") '
        '|| ($.eventName = "AttachPolicy") || ($.eventName = "CreateAccount") || '
        '($.eventName = "CreateOrganizationalUnit") || ($.eventName = "CreatePolicy") || '
        '($.eventName = "DeclineHandshake") || ($.eventName = "DeleteOrganization") || '
        '($.eventName = "DeleteOrganizationalUnit") || ($.eventName = "DeletePolicy") || '
        '($.eventName = "DetachPolicy") || ($.eventName = "DisablePolicyType") || '
        '($.eventName = "EnablePolicyType") || ($.eventName = "InviteAccountToOrganization") || '
        '($.eventName = "LeaveOrganization") || ($.eventName = "MoveAccount") || '
        '($.eventName = "RemoveAccountFromOrganization") || ($.eventName = "UpdatePolicy") || '
        '($.eventName = "UpdateOrganizationalUnit")) }',
        [rec(eventSource="organizations.amazonaws.com", eventName="LeaveOrganization")],
        [
            rec(eventSource="organizations.amazonaws.com", eventName="DescribeOrganization"),
            rec(eventSource="iam.amazonaws.com", eventName="CreatePolicy"),
        ],
    ),
}


@pytest.mark.parametrize("rule_id", sorted(CIS))
def test_cis_pattern_matches_and_rejects_realistic_records(rule_id: str) -> None:
    text, positives, negatives = CIS[rule_id]
    pattern = compile_filter_pattern(text)
    assert [pattern.matches(r) for r in positives] == [True] * len(positives)
    assert [pattern.matches(r) for r in negatives] == [False] * len(negatives)


def test_cis_required_event_names_are_the_published_lists() -> None:
    names = {
        k: compile_filter_pattern(v[0]).required_values(("eventName",)) for k, v in CIS.items()
    }
    assert names["cis-cloudtrail-changes"] == {
        "CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging"
    }  # fmt: skip
    assert names["cis-kms-key-disable-delete"] == {"DisableKey", "ScheduleKeyDeletion"}
    assert names["cis-console-auth-failures"] == {"ConsoleLogin"}
    assert len(names["cis-organizations-changes"] or ()) == 18
    assert names["cis-root-usage"] is None
    assert names["cis-unauthorized-api-calls"] is None


from tests.unit.shared_data import DATASET, README_CIS_COUNTS  # noqa: E402


@pytest.mark.skipif(not DATASET.is_dir(), reason="invictus-aws-dataset not available")
def test_cis_counts_on_the_invictus_dataset_match_its_readme() -> None:
    records = []
    for path in sorted(DATASET.glob("*.json.gz")):
        with gzip.open(path) as fh:
            records += json.load(fh)["Records"]
    patterns = {k: compile_filter_pattern(v[0]) for k, v in CIS.items()}
    counts = {k: sum(p.matches(r) for r in records) for k, p in patterns.items()}
    assert {k: n for k, n in counts.items() if n} == README_CIS_COUNTS


@pytest.mark.parametrize(
    "text",
    [  # other published forms (CIS v1.2 / v1.4, Security Hub remediation texts)
        '{ ($.userIdentity.type = "Root") && ($.userIdentity.invokedBy NOT EXISTS) && '
        '($.eventType != "AwsServiceEvent") }',
        "{ ($.userIdentity.type=Root) && ($.userIdentity.invokedBy NOT EXISTS && "
        "$.eventType !=AwsServiceEvent) }",
        '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }',
        "{ ($.errorCode = *UnauthorizedOperation) || ($.errorCode = AccessDenied*) || "
        "($.sourceIPAddress!=delivery.logs.amazonaws.com) || ($.eventName!=HeadBucket) }",
    ],
)
def test_published_variants_compile(text: str) -> None:
    compile_filter_pattern(text)


# --- the user guide's own examples ---------------------------------------------------------

GUIDE_EVENT: dict[str, Any] = {
    "eventType": "UpdateTrail",
    "sourceIPAddress": "111.111.111.111",
    "arrayKey": ["value", "another value"],
    "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
    "SomeObject": None,
    "ThisFlag": True,
}
GUIDE_COMPOUND: dict[str, Any] = {
    "user": {"id": 1, "email": "John.Stiles@example.com"},
    "users": [
        {"id": 2, "email": "John.Doe@example.com"},
        {"id": 3, "email": "Jane.Doe@example.com"},
    ],
    "actions": ["GET", "PUT", "DELETE"],
    "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
}


@pytest.mark.parametrize(
    ("text", "record", "expected"),
    [
        ('{ $.eventType = "UpdateTrail" }', GUIDE_EVENT, True),
        ("{ $.sourceIPAddress != 123.123.* }", GUIDE_EVENT, True),
        ('{ $.arrayKey[0] = "value" }', GUIDE_EVENT, True),
        ("{ $.objectList[1].id = 2 }", GUIDE_EVENT, True),
        ("{ $.SomeObject IS NULL }", GUIDE_EVENT, True),
        ("{ $.SomeOtherObject NOT EXISTS }", GUIDE_EVENT, True),
        ("{ $.ThisFlag IS TRUE }", GUIDE_EVENT, True),
        (
            '{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }',
            GUIDE_COMPOUND,
            True,
        ),
        (
            '{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }',
            GUIDE_COMPOUND,
            False,
        ),
        (
            '{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch '
            "&& $.actions[2] = nomatch }",
            GUIDE_COMPOUND,
            True,
        ),
        (
            '{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) '
            "&& $.actions[2] = nomatch }",
            GUIDE_COMPOUND,
            False,
        ),
        ("{ $.users = 1 }", {"users": [1, 2, 3]}, False),  # selector on an array: never
        ("{ $.users != 1 }", {"users": [1, 2, 3]}, False),
        ("{ $.foo = bar || $.foo = baz }", {"foo": "baz"}, True),
    ],
)
def test_user_guide_examples(text: str, record: dict[str, Any], expected: bool) -> None:
    assert compile_filter_pattern(text).matches(record) is expected


# --- operator by operator ------------------------------------------------------------------


def m(text: str, record: Any) -> bool:
    return compile_filter_pattern(text).matches(record)


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{ $.v = ConsoleLogin }", "ConsoleLogin", True),
        ('{ $.v = "ConsoleLogin" }', "ConsoleLogin", True),
        ("{ $.v = ConsoleLogin }", "consolelogin", False),  # case-sensitive
        ("{ $.v = Console }", "ConsoleLogin", False),  # whole value, not a substring
        ('{ $.v = "Failed authentication" }', "Failed authentication", True),
        ('{ $.v = "" }', "", True),
        ('{ $.v = "say \\"hi\\"" }', 'say "hi"', True),
        ("{ $.v = Access* }", "AccessDenied", True),
        ("{ $.v = Access* }", "Access", True),
        ("{ $.v = Access* }", "NoAccess", False),
        ("{ $.v = *Denied }", "AccessDenied", True),
        ("{ $.v = *Denied }", "DeniedAccess", False),
        ("{ $.v = *cess* }", "AccessDenied", True),
        ("{ $.v = *cess* }", "Denied", False),
        ("{ $.v = Ev*ent }", "Event", False),  # a '*' inside a value is literal
        ("{ $.v = Ev*ent }", "Ev*ent", True),
        ('{ $.v = "\\*Denied" }', "*Denied", True),  # escaped: literal
        ('{ $.v = "\\*Denied" }', "AccessDenied", False),
        ("{ $.v = * }", "anything", True),
        ("{ $.v = * }", None, True),
        ("{ $.v = * }", {"an": "object"}, False),
        ("{ $.v = 4* }", 404, True),  # numbers compare by their JSON text with strings
        ('{ $.v = "400" }', 400, True),
        ("{ $.v = true }", True, True),
        ("{ $.v = false }", True, False),
        ('{ $.v = "null" }', None, False),
    ],
)
def test_string_equality(text: str, value: Any, expected: bool) -> None:
    assert m(text, {"v": value}) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Yes", False),
        ("No", True),
        ("yes", True),
        (None, True),  # null is a value, not "Yes"
        (1, True),
        (["Yes"], False),  # arrays and objects never satisfy a comparison
        ({"x": "Yes"}, False),
    ],
)
def test_not_equal(value: Any, expected: bool) -> None:
    assert m('{ $.a.v != "Yes" }', {"a": {"v": value}}) is expected


def test_not_equal_matches_an_absent_field_and_an_absent_parent() -> None:
    assert m('{ $.a.v != "Yes" }', {"a": {}}) is True
    assert m('{ $.a.v != "Yes" }', {}) is True
    assert m('{ $.a.v != "Yes" }', {"a": "not an object"}) is True
    assert m("{ $.a.v != * }", {}) is True
    assert m("{ $.a.v != * }", {"a": {"v": ""}}) is False


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("{ $.n = 400 }", 400, True),
        ("{ $.n = 400 }", 400.0, True),
        ("{ $.n = 400 }", "400", True),  # a string written as a number
        ("{ $.n = 400 }", "400.0", True),
        ("{ $.n = 400 }", "4e2", True),
        ("{ $.n = 400 }", " 400", False),
        ("{ $.n = 400 }", 401, False),
        ("{ $.n = 1 }", True, False),  # booleans are not numbers
        ("{ $.n != 500 }", 400, True),
        ("{ $.n != 500 }", 500, False),
        ("{ $.n != 500 }", "abc", True),
        ("{ $.n >= 500 }", 500, True),
        ("{ $.n > 500 }", 500, False),
        ("{ $.n < 10e3 }", 9999, True),
        ("{ $.n < 10e-3 }", 0.001, True),
        ("{ $.n < 10e-3 }", 0.01, False),
        ("{ $.n <= 55.5 }", 55.5, True),
        ("{ $.n > +1000 }", 1001, True),
        ("{ $.n > -1.5E+2 }", -149, True),
        ("{ $.n > 5 }", "6", True),
        ("{ $.n > 5 }", "six", False),
        ("{ $.n > 5 }", None, False),
        ("{ $.n > 5 }", [6], False),
        ("{ $.n < 5 }", False, False),
        ("{ $.recipientAccountId = 123837392027 }", "123837392027", True),
        ("{ $.n < 1 }", float("nan"), False),
        ("{ $.n > 1 }", float("inf"), True),
        ("{ $.n < 1e999 }", 10**400, True),
    ],
)
def test_numbers(text: str, value: Any, expected: bool) -> None:
    key = "recipientAccountId" if "recipient" in text else "n"
    assert m(text, {key: value}) is expected


def test_relational_operators_on_an_absent_field_never_match() -> None:
    for op in ("<", "<=", ">", ">=", "="):
        assert m(f"{{ $.n {op} 1 }}", {}) is False
    assert m("{ $.n != 1 }", {}) is True


@pytest.mark.parametrize(
    ("check", "matching"),
    [
        ("IS NULL", [None]),
        ("NOT EXISTS", []),
        ("IS TRUE", [True]),
        ("IS FALSE", [False]),
    ],
)
def test_checks(check: str, matching: list[Any]) -> None:
    values: list[Any] = [None, True, False, 0, 1, "", "true", "null", [], {}]
    pattern = compile_filter_pattern(f"{{ $.a.v {check} }}")
    got = [v for v in values if pattern.matches({"a": {"v": v}})]
    assert got == matching
    assert pattern.matches({"a": {}}) is (check == "NOT EXISTS")
    assert pattern.matches({}) is (check == "NOT EXISTS")


def test_keywords_are_case_insensitive() -> None:
    assert m("{ $.a is null }", {"a": None}) is True
    assert m("{ $.a Not Exists }", {}) is True


def test_array_indexes() -> None:
    record = {"resources": [{"ARN": "arn:aws:s3:::a"}, {"ARN": "arn:aws:s3:::b"}]}
    assert m('{ $.resources[1].ARN = "arn:aws:s3:::b" }', record) is True
    assert m('{ $.resources[0].ARN = "arn:aws:s3:::b" }', record) is False
    assert m("{ $.resources[2].ARN = * }", record) is False
    assert m("{ $.resources[2].ARN NOT EXISTS }", record) is True
    assert m("{ $.resources[0] = x }", {"resources": {"0": "x"}}) is False  # not an array
    assert m("{ $.resources.ARN = * }", record) is False  # a property of an array: absent


def test_precedence_and_before_or_and_parentheses() -> None:
    record = {"a": "1", "b": "0", "c": "1"}
    assert m("{ $.a = 1 || $.b = 1 && $.c = 0 }", record) is True
    assert m("{ ($.a = 1 || $.b = 1) && $.c = 0 }", record) is False
    assert m("{ ((($.a = 1))) }", record) is True


def test_whitespace_is_free() -> None:
    compact = '{$.eventName="ConsoleLogin"&&$.errorMessage!=x||($.a>=1)}'
    spaced = '{\n\t $.eventName  =  "ConsoleLogin"\n  && $.errorMessage != x\n  || ( $.a >= 1 )\n}'
    for text in (compact, spaced):
        pattern = compile_filter_pattern(text)
        assert pattern.matches(CONSOLE_LOGIN_NO_MFA) is True
        assert pattern.matches(API_CALL) is False


def test_selector_names_with_dash_and_underscore() -> None:
    record = {"additionalEventData": {"x-amz-id-2": "abc"}, "_r": 1}
    assert m('{ $.additionalEventData.x-amz-id-2 = "abc" && $._r = 1 }', record) is True


def test_non_object_records_do_not_raise() -> None:
    for record in (None, [], "text", 3, [{"eventName": "x"}]):
        assert m("{ $.eventName = x }", record) is False
        assert m("{ $.eventName NOT EXISTS }", record) is True


# --- required_values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{ ($.eventName = ConsoleLogin) && ($.errorMessage = x*) }", {"ConsoleLogin"}),
        ("{ $.eventName = A || $.eventName = B }", {"A", "B"}),
        ("{ ($.eventName = A || $.eventName = B) && $.eventName = B }", {"B"}),
        ("{ $.eventName = A && $.eventName = B }", set()),
        ("{ $.eventName = A || $.eventSource = s }", None),  # a branch leaves it free
        ("{ $.eventName = Console* }", None),
        ("{ $.eventName != A }", None),
        ("{ $.eventName = 400 }", None),
        ('{ $.eventName = "400" }', None),  # would also match the number 400
        ("{ $.eventName = true }", None),
        ("{ $.eventName NOT EXISTS }", None),
        ("{ $.eventName.x = A }", None),
        ("{ $.other = A }", None),
    ],
)
def test_required_values_for_event_name(text: str, expected: set[str] | None) -> None:
    got = compile_filter_pattern(text).required_values(("eventName",))
    assert got == (None if expected is None else frozenset(expected))


def test_required_values_for_booleans_and_nested_paths() -> None:
    assert compile_filter_pattern("{ $.readOnly IS FALSE }").required_values(("readOnly",)) == {
        False
    }
    pattern = compile_filter_pattern('{ $.userIdentity.type = "Root" && $.x IS NULL }')
    assert pattern.required_values(("userIdentity", "type")) == {"Root"}
    assert pattern.required_values(("x",)) == {None}
    assert pattern.required_values(("userIdentity",)) is None


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("", "at column 1", "empty filter pattern"),
        ("ConsoleLogin", "at column 1", "starts with '{', found 'ConsoleLogin'"),
        ("$.eventName = x", "at column 1", "found '$.eventName'"),
        ("{ }", "at column 3", "empty JSON filter pattern"),
        ("{ $.eventName = x", "at column 18", "missing closing '}'"),
        ("{ ($.a = b }", "at column 12", "missing ')' for the '(' at column 3, found '}'"),
        ("{ (($.a = b) }", "at column 14", "missing ')' for the '(' at column 3"),
        ("{ $.a = b) }", "at column 10", "unbalanced ')'"),
        ("{ $.a = }", "at column 9", "missing value after '=', found '}'"),
        ("{ $.a != ) }", "at column 10", "missing value after '!=', found ')'"),
        ("{ $.a }", "at column 7", "expected an operator"),
        ("{ $.a == b }", "at column 7", "unknown operator '=='"),
        ("{ $.a =< 1 }", "at column 7", "unknown operator '=<'"),
        ("{ $.a ~ b }", "at column 7", "found '~'"),
        ("{ $.a LIKE b }", "at column 7", "found 'LIKE'"),
        ("{ $.a & $.b = 1 }", "at column 7", "unknown operator '&'"),
        ("{ $.a = b AND $.c = d }", "at column 11", "found 'AND' (write '&&'"),
        ("{ $.a = two words }", "at column 13", "found 'words' (a value that contains spaces"),
        ("{ $.a = b } trailing", "at column 13", "unexpected 'trailing' after the closing '}'"),
        ("{ $.a = b }}", "at column 12", "unexpected '}'"),
        ("{ $.a > abc }", "at column 9", "'>' compares numbers: expected a number, found 'abc'"),
        ('{ $.a < "5" }', "at column 9", "found '\"5\"'"),
        (
            "{ $.a IS NOT NULL }",
            "at column 10",
            "expected NULL, TRUE or FALSE after IS, found 'NOT'",
        ),
        ("{ $.a NOT NULL }", "at column 11", "expected EXISTS after NOT, found 'NULL'"),
        ("{ $.a IS }", "at column 10", "found '}'"),
        ('{ $.a = "open }', "at column 9", "unterminated quoted string"),
        ("{ $.a = $.b }", "at column 9", "comparing a field with another field ('$.b')"),
        ("{ $a = 1 }", "at column 4", "a selector starts with '$.'"),
        ("{ $.a. = 1 }", "at column 7", "expected a property name after '.'"),
        ("{ $.a[*] = 1 }", "at column 6", "array wildcard '[*]' is not supported"),
        ("{ $.a[x] = 1 }", "at column 6", "expected an array index such as [0]"),
        ("{ $.a[1 = 1 }", "at column 6", "expected an array index"),
        ("{ $.a = %Err.*% }", "at column 9", "regular expressions (%...%) are not supported"),
        ("{ () }", "at column 4", "empty parentheses"),
        ("{ $.a = 1 && }", "at column 14", "expected a condition such as"),
        ("{ || $.a = 1 }", "at column 3", "found '||'"),
        ("{\n  $.a = 1 &&\n  $.b ==  2\n}", "at line 3, column 7", "unknown operator '=='"),
        ("{" + "(" * 65 + "$.a = 1" + ")" * 65 + "}", "at column 66", "nested deeper than 64"),
    ],
)
def test_malformed_patterns_are_located_and_quoted(text: str, where: str, fragment: str) -> None:
    with pytest.raises(MatcherError) as caught:
        compile_filter_pattern(text)
    assert caught.value.where == where
    assert fragment in caught.value.message
    assert str(caught.value).startswith(where + ": ")


def test_nesting_up_to_the_limit_is_accepted() -> None:
    text = "{" + "(" * 64 + "$.a = 1" + ")" * 64 + "}"
    assert compile_filter_pattern(text).matches({"a": 1}) is True


# --- robustness: attacker-controlled records -----------------------------------------------

KEYS = ["a", "b", "v", "eventName", "userIdentity", "type", "invokedBy", "errorCode", "0"]
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["400", "4e2", "-1.5", "true", "Root", "AccessDenied", "x*y", ""])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=25,
)
RECORDS = st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=6)
ROBUSTNESS_PATTERNS = [
    compile_filter_pattern(text)
    for text in [
        CIS["cis-root-usage"][0],
        CIS["cis-unauthorized-api-calls"][0],
        CIS["cis-console-login-no-mfa"][0],
        "{ $.a = 400 || $.a != 4e2 || $.a < -1.5 || $.a >= 1e999 || $.a <= 0 || $.a > 0 }",
        "{ $.a = * || $.a = *x* || $.a = x* || $.a = *y || $.a != * || $.a = true }",
        "{ $.a[0] = 1 || $.a[0][1].b = x || $.a.b[3] != y || $.v[0] IS NULL }",
        "{ $.a IS TRUE || $.a IS FALSE || $.a IS NULL || $.a.b NOT EXISTS }",
    ]
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=RECORDS)
def test_matching_never_raises_on_arbitrary_json(record: dict[str, Any]) -> None:
    for pattern in ROBUSTNESS_PATTERNS:
        assert pattern.matches(record) in (True, False)


@settings(max_examples=100, deadline=None)
@given(value=JSON_VALUES, literal=st.sampled_from(["x", "400", "*", "4*", '"a b"', "1.5e3"]))
def test_not_equal_is_the_negation_of_equal_on_scalars(value: Any, literal: str) -> None:
    record = {"a": value}
    equal = compile_filter_pattern(f"{{ $.a = {literal} }}").matches(record)
    differ = compile_filter_pattern(f"{{ $.a != {literal} }}").matches(record)
    if isinstance(value, dict | list):
        assert (equal, differ) == (False, False)
    else:
        assert differ is not equal


@settings(max_examples=100, deadline=None)
@given(name=JSON_VALUES | st.sampled_from(["A", "B", "C"]), other=JSON_VALUES)
def test_required_values_are_sound(name: Any, other: Any) -> None:
    record = {"eventName": name, "b": other}
    for text in [
        "{ $.eventName = A || ($.eventName = B && $.b = 1) }",
        "{ ($.eventName = A || $.eventName = C) && $.b != x }",
        "{ $.eventName IS NULL || $.eventName IS TRUE }",
    ]:
        pattern = compile_filter_pattern(text)
        required = pattern.required_values(("eventName",))
        assert required is not None
        if pattern.matches(record):
            assert name in required
            assert type(name) in (str, bool, type(None))


TOKENS = [
    *("{", "}", "(", ")", "&&", "||", "=", "!=", "<", ">=", "$.a", "$.a[0]", '"x*"', "*"),
    *("1e3", "-2", "IS", "NULL", "NOT", "EXISTS", "TRUE", " ", "x", "&", "$", "[", '"'),
]
RECORD_SAMPLES: list[Any] = [{}, {"a": None}, {"a": [1, {"b": "x"}]}, {"a": "x"}, {"a": 2000}]


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join) | st.text(max_size=30))
def test_compiling_anything_either_works_or_raises_matcher_error(text: str) -> None:
    error: MatcherError | None = None
    try:
        pattern = compile_filter_pattern(text)
    except MatcherError as exc:
        error = exc
    if error is not None:
        assert error.where.startswith("at ")
    else:
        assert all(pattern.matches(r) in (True, False) for r in RECORD_SAMPLES)


def test_hostile_values_do_not_raise() -> None:
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(100_000):
        cursor["a"] = {}
        cursor = cursor["a"]
    hostile: list[dict[str, Any]] = [
        {"a": deep},
        {"a": 10**5000},  # more digits than str(int) allows
        {"a": "9" * 100_000},
        {"a": "x" * 1_000_000 + "Denied"},
        {"a": -(10**5000), "v": float("-inf")},
        {"a": [[[[[]]]]]},
    ]
    patterns = [
        *ROBUSTNESS_PATTERNS,
        compile_filter_pattern("{ $.a = *Denied && $.a.a.a.a.a.a = * }"),
    ]
    for record in hostile:
        for pattern in patterns:
            assert pattern.matches(record) in (True, False)
    assert patterns[-1].matches({"a": "x" * 1_000_000 + "Denied"}) is False
    assert compile_filter_pattern("{ $.a = *Denied }").matches({"a": "x" * 10_000 + "Denied"})
    assert compile_filter_pattern("{ $.a > 1 }").matches({"a": 10**5000}) is True
    assert compile_filter_pattern("{ $.a = 1* }").matches({"a": 10**5000}) is False


@settings(max_examples=100, deadline=None)
@given(value=JSON_VALUES | st.sampled_from(["A", "B", "a"]))
def test_or_of_plain_values_agrees_with_the_general_evaluation(value: Any) -> None:
    fast = compile_filter_pattern("{ $.a = A || $.a = B || $.a = x*y }")  # one set lookup
    general = compile_filter_pattern("{ $.a = A || $.a = B || $.a = x*y || $.zz = * }")
    assert fast.matches({"a": value}) is general.matches({"a": value})
    assert fast.matches({"a": value}) is (value in ("A", "B", "x*y") and isinstance(value, str))
