#include "daemon/platform/vm/agent_client.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace nichandover {
namespace platform {
namespace vm {
namespace {

// Records and rings: the daemon bounds these by its arbiter timeout (1 s by
// default) anyway; a placement waits for the guests.
constexpr absl::Duration kRecordDeadline = absl::Seconds(2);
// Listing asks QEMU where each NIC is; the first call also connects (slow in
// an emulated guest that is still booting).
constexpr absl::Duration kListDeadline = absl::Seconds(10);
constexpr absl::Duration kPlaceDeadline = absl::Seconds(30);

void SetDeadline(grpc::ClientContext& context, absl::Duration d) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoNanoseconds(d));
}

absl::Status FromGrpc(const grpc::Status& s, const char* call) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("host agent ", call, ": ", s.error_message()));
}

}  // namespace

absl::StatusOr<std::vector<vmhost::AgentNic>> AgentClient::ListNics() {
  grpc::ClientContext context;
  SetDeadline(context, kListDeadline);
  vmhost::ListNicsResponse response;
  grpc::Status s = stub_->ListNics(&context, vmhost::ListNicsRequest(), &response);
  if (!s.ok()) return FromGrpc(s, "ListNics");
  return std::vector<vmhost::AgentNic>(response.nics().begin(), response.nics().end());
}

absl::Status AgentClient::ReportNic(const std::string& bdf, const v1::InterruptLayout& interrupts) {
  grpc::ClientContext context;
  SetDeadline(context, kRecordDeadline);
  vmhost::ReportNicRequest request;
  request.set_bdf(bdf);
  request.set_vm(vm_name_);
  *request.mutable_interrupts() = interrupts;
  vmhost::ReportNicResponse response;
  return FromGrpc(stub_->ReportNic(&context, request, &response), "ReportNic");
}

absl::StatusOr<v1::OwnershipRecord> AgentClient::ReadRecord(const std::string& bdf) {
  grpc::ClientContext context;
  SetDeadline(context, kRecordDeadline);
  vmhost::ReadRecordRequest request;
  request.set_bdf(bdf);
  v1::OwnershipRecord record;
  grpc::Status s = stub_->ReadRecord(&context, request, &record);
  if (!s.ok()) return FromGrpc(s, "ReadRecord");
  return record;
}

absl::StatusOr<v1::OwnershipRecord> AgentClient::CompareAndSwap(
    const std::string& bdf, const v1::OwnershipRecord& expected,
    const v1::OwnershipRecord& desired) {
  grpc::ClientContext context;
  SetDeadline(context, kRecordDeadline);
  vmhost::CompareAndSwapRequest request;
  request.set_bdf(bdf);
  *request.mutable_expected() = expected;
  *request.mutable_desired() = desired;
  v1::OwnershipRecord record;
  grpc::Status s = stub_->CompareAndSwap(&context, request, &record);
  if (!s.ok()) return FromGrpc(s, "CompareAndSwap");
  return record;
}

absl::Status AgentClient::WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                            const std::vector<v1::QueueRingState>& rings) {
  grpc::ClientContext context;
  SetDeadline(context, kRecordDeadline);
  vmhost::WriteHandoffRingsRequest request;
  request.set_bdf(bdf);
  request.set_epoch(fence.epoch);
  request.set_op_id(fence.op_id);
  for (const auto& ring : rings) *request.add_rings() = ring;
  vmhost::WriteHandoffRingsResponse response;
  return FromGrpc(stub_->WriteHandoffRings(&context, request, &response), "WriteHandoffRings");
}

absl::StatusOr<std::vector<v1::QueueRingState>> AgentClient::ReadHandoffRings(
    const std::string& bdf, uint64_t epoch) {
  grpc::ClientContext context;
  SetDeadline(context, kRecordDeadline);
  vmhost::ReadHandoffRingsRequest request;
  request.set_bdf(bdf);
  request.set_epoch(epoch);
  vmhost::ReadHandoffRingsResponse response;
  grpc::Status s = stub_->ReadHandoffRings(&context, request, &response);
  if (!s.ok()) return FromGrpc(s, "ReadHandoffRings");
  return std::vector<v1::QueueRingState>(response.rings().begin(), response.rings().end());
}

absl::StatusOr<vmhost::PlaceNicResponse> AgentClient::PlaceNic(const std::string& bdf,
                                                               const Fence& fence) {
  grpc::ClientContext context;
  SetDeadline(context, kPlaceDeadline);
  vmhost::PlaceNicRequest request;
  request.set_bdf(bdf);
  request.set_epoch(fence.epoch);
  request.set_op_id(fence.op_id);
  request.set_vm(vm_name_);
  vmhost::PlaceNicResponse response;
  grpc::Status s = stub_->PlaceNic(&context, request, &response);
  if (!s.ok()) return FromGrpc(s, "PlaceNic");
  return response;
}

absl::StatusOr<v1::OwnershipRecord> AgentArbiter::Read(const std::string& bdf) {
  return agent_->ReadRecord(bdf);
}

absl::StatusOr<v1::OwnershipRecord> AgentArbiter::CompareAndSwap(
    const std::string& bdf, const v1::OwnershipRecord& expected,
    const v1::OwnershipRecord& desired) {
  return agent_->CompareAndSwap(bdf, expected, desired);
}

absl::Status NotPluggedHere(AgentClient& agent, const std::string& bdf, absl::string_view what) {
  absl::StatusOr<v1::OwnershipRecord> record = agent.ReadRecord(bdf);
  if (absl::IsNotFound(record.status())) return record.status();
  return absl::FailedPreconditionError(
      absl::StrCat(what, " ", bdf, ": not plugged into VM ", agent.vm_name()));
}

absl::Status AgentArbiter::WriteHandoffRings(const std::string& bdf, const Fence& fence,
                                             const std::vector<v1::QueueRingState>& rings) {
  return agent_->WriteHandoffRings(bdf, fence, rings);
}

absl::StatusOr<std::vector<v1::QueueRingState>> AgentArbiter::ReadHandoffRings(
    const std::string& bdf, uint64_t epoch) {
  return agent_->ReadHandoffRings(bdf, epoch);
}

}  // namespace vm
}  // namespace platform
}  // namespace nichandover
