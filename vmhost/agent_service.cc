#include "agent_service.h"

namespace nichandover {
namespace vmhost {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace

grpc::Status AgentService::ListNics(grpc::ServerContext*, const ListNicsRequest*,
                                    ListNicsResponse* response) {
  auto nics = agent_->ListNics();
  if (!nics.ok()) return ToGrpc(nics.status());
  for (auto& nic : *nics) *response->add_nics() = std::move(nic);
  return grpc::Status::OK;
}

grpc::Status AgentService::ReportNic(grpc::ServerContext*, const ReportNicRequest* request,
                                     ReportNicResponse*) {
  return ToGrpc(agent_->ReportNic(request->bdf(), request->vm(), request->interrupts()));
}

grpc::Status AgentService::ReadRecord(grpc::ServerContext*, const ReadRecordRequest* request,
                                      v1::OwnershipRecord* response) {
  auto record = agent_->Read(request->bdf());
  if (!record.ok()) return ToGrpc(record.status());
  *response = *record;
  return grpc::Status::OK;
}

grpc::Status AgentService::CompareAndSwap(grpc::ServerContext*,
                                          const CompareAndSwapRequest* request,
                                          v1::OwnershipRecord* response) {
  auto record = agent_->CompareAndSwap(request->bdf(), request->expected(), request->desired());
  if (!record.ok()) return ToGrpc(record.status());
  *response = *record;
  return grpc::Status::OK;
}

grpc::Status AgentService::WriteHandoffRings(grpc::ServerContext*,
                                             const WriteHandoffRingsRequest* request,
                                             WriteHandoffRingsResponse*) {
  return ToGrpc(agent_->WriteHandoffRings(request->bdf(), Fence{request->epoch(), request->op_id()},
                                          {request->rings().begin(), request->rings().end()}));
}

grpc::Status AgentService::ReadHandoffRings(grpc::ServerContext*,
                                            const ReadHandoffRingsRequest* request,
                                            ReadHandoffRingsResponse* response) {
  auto rings = agent_->ReadHandoffRings(request->bdf(), request->epoch());
  if (!rings.ok()) return ToGrpc(rings.status());
  for (const auto& ring : *rings) *response->add_rings() = ring;
  return grpc::Status::OK;
}

grpc::Status AgentService::PlaceNic(grpc::ServerContext*, const PlaceNicRequest* request,
                                    PlaceNicResponse* response) {
  auto placed =
      agent_->PlaceNic(request->bdf(), Fence{request->epoch(), request->op_id()}, request->vm());
  if (!placed.ok()) return ToGrpc(placed.status());
  *response = *placed;
  return grpc::Status::OK;
}

}  // namespace vmhost
}  // namespace nichandover
