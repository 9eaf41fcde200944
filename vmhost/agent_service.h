// VmAgent (agent.proto) over gRPC: a thin mapping of Agent's calls and
// statuses.
#ifndef NICHANDOVER_VMHOST_AGENT_SERVICE_H_
#define NICHANDOVER_VMHOST_AGENT_SERVICE_H_

#include "agent.grpc.pb.h"
#include "agent.h"

namespace nichandover {
namespace vmhost {

class AgentService final : public VmAgent::Service {
 public:
  explicit AgentService(Agent* agent) : agent_(agent) {}

  grpc::Status ListNics(grpc::ServerContext*, const ListNicsRequest*,
                        ListNicsResponse* response) override;
  grpc::Status ReportNic(grpc::ServerContext*, const ReportNicRequest* request,
                         ReportNicResponse*) override;
  grpc::Status ReadRecord(grpc::ServerContext*, const ReadRecordRequest* request,
                          v1::OwnershipRecord* response) override;
  grpc::Status CompareAndSwap(grpc::ServerContext*, const CompareAndSwapRequest* request,
                              v1::OwnershipRecord* response) override;
  grpc::Status WriteHandoffRings(grpc::ServerContext*, const WriteHandoffRingsRequest* request,
                                 WriteHandoffRingsResponse*) override;
  grpc::Status ReadHandoffRings(grpc::ServerContext*, const ReadHandoffRingsRequest* request,
                                ReadHandoffRingsResponse* response) override;
  grpc::Status PlaceNic(grpc::ServerContext*, const PlaceNicRequest* request,
                        PlaceNicResponse* response) override;

 private:
  Agent* agent_;
};

}  // namespace vmhost
}  // namespace nichandover

#endif  // NICHANDOVER_VMHOST_AGENT_SERVICE_H_
