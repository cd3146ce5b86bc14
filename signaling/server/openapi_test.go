package server

import (
	"os"
	"strings"
	"testing"

	"github.com/porthole-dev/porthole/proto"
)

// TestOpenAPIDocumentsEveryPath keeps openapi.yaml in step with the routes.
func TestOpenAPIDocumentsEveryPath(t *testing.T) {
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, p := range []string{
		proto.PathLogin, proto.PathLoginMFA, proto.PathLogout, proto.PathMe, proto.PathPassword, proto.PathTOTP,
		proto.PathTOTPConf, proto.PathTokens, proto.PathTokens + "/{id}", proto.PathOverview, proto.PathDevices,
		proto.PathDevice, proto.PathAdopt, proto.PathDiscovered, proto.PathDiscover, proto.PathSessions, proto.PathSessions + "/{id}", proto.PathUsers, proto.PathUser,
		proto.PathUserRole, proto.PathSites, proto.PathSite, proto.PathAgents, proto.PathAgent, proto.PathAudit,
		proto.PathAuthorize, proto.PathToken, proto.PathAuditVerify, proto.PathJobs, proto.PathJob, proto.PathJobLog,
		proto.PathJobExport, proto.PathJobVerify, proto.PathJobTerminate,
		proto.PathWebhooks, proto.PathWebhook, proto.PathWebhookTest, proto.PathWebhookDeliveries,
		proto.PathSitePolicy, proto.PathDevicePolicy, proto.PathRequests, proto.PathRequest, proto.PathDecision,
		proto.PathRevoke, proto.PathOAuthMetadata, proto.PathCLICode, proto.PathEnrollments, proto.PathEnroll, proto.PathAgentRevoke,
	} {
		if !strings.Contains(doc, "\n  "+p+":\n") {
			t.Errorf("openapi.yaml does not document %s", p)
		}
	}
}
