// grpc-go 1.19 and CSI spec 1.2, as rexray/gocsi's csc (seed 003) pins them. The golang.org/x
// modules are those gocsi resolves with; only the grpc version matters for what is tested.
module tscsi.dev/test/clients/csc-go

go 1.12

require (
	github.com/container-storage-interface/spec v1.2.0
	github.com/golang/protobuf v1.3.1 // indirect
	golang.org/x/net v0.0.0-20181220203305-927f97764cc3 // indirect
	google.golang.org/grpc v1.19.0
)
