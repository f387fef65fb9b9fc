// A small csc: the seed 003 walk-through's client (rexray/gocsi's csc), reduced to the calls the
// walk-through makes, dialled the way csc dials. The module proxy refuses csc itself, so the tests
// build this instead: the same grpc-go (1.19, go.mod here) and the same dial, hence the same
// bytes on the wire, in particular `:authority: tcp://127.0.0.1:PORT` (the whole endpoint).
// scripts/client-tools.sh builds it a second time against a current grpc-go (current/go.mod).
//
// Usage: csc-go [--endpoint E] [flags] GROUP COMMAND [ARG]
//
//	identity plugin-info | identity probe [--count N]
//	node get-info | node stage ID | node publish ID | node unpublish ID | node unstage ID
//	controller new NAME | controller del ID | controller list-volumes
//
// Answers are printed as one JSON line. A failed call prints the status message on stderr and
// exits with the gRPC code, as csc does, so a test can tell NOT_FOUND from a dead connection.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

type kv map[string]string

func (m kv) String() string { return fmt.Sprint(map[string]string(m)) }
func (m kv) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		i := strings.IndexByte(p, '=')
		if i < 0 {
			return fmt.Errorf("%q: want key=value", p)
		}
		m[p[:i]] = p[i+1:]
	}
	return nil
}

var (
	endpoint   = flag.String("endpoint", os.Getenv("CSI_ENDPOINT"), "tcp://HOST:PORT, unix:///PATH or a socket path")
	timeout    = flag.Duration("timeout", time.Minute, "per call")
	capSpec    = flag.String("cap", "SINGLE_NODE_WRITER,mount", "MODE,mount[,FSTYPE[,FLAG...]] or MODE,block")
	reqBytes   = flag.Int64("req-bytes", 0, "required capacity")
	target     = flag.String("target-path", "", "")
	staging    = flag.String("staging-target-path", "", "")
	readOnly   = flag.Bool("read-only", false, "")
	count      = flag.Int("count", 1, "probe: how many calls on one connection")
	params     = kv{}
	volContext = kv{}
)

// protoAddr mirrors gocsi's utils.ParseProtoAddr: tcp:// and unix:// prefixes, else a path.
func protoAddr(ep string) (string, string) {
	for _, p := range []string{"tcp", "tcp4", "tcp6", "unix", "unixpacket"} {
		if strings.HasPrefix(ep, p+"://") {
			return p, strings.TrimPrefix(ep, p+"://")
		}
	}
	return "unix", ep
}

func capability() *csi.VolumeCapability {
	parts := strings.Split(*capSpec, ",")
	mode, ok := csi.VolumeCapability_AccessMode_Mode_value[parts[0]]
	if !ok {
		fail(3, "--cap: unknown access mode "+parts[0])
	}
	c := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_Mode(mode)}}
	if len(parts) > 1 && parts[1] == "block" {
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
		return c
	}
	m := &csi.VolumeCapability_MountVolume{}
	if len(parts) > 2 {
		m.FsType = parts[2]
	}
	if len(parts) > 3 {
		m.MountFlags = parts[3:]
	}
	c.AccessType = &csi.VolumeCapability_Mount{Mount: m}
	return c
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(code)
}

func main() {
	flag.Var(params, "params", "key=value,... (CreateVolume parameters)")
	flag.Var(volContext, "vol-context", "key=value,... (the volume context CreateVolume returned)")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 {
		fail(2, "usage: csc-go [flags] GROUP COMMAND [ARG]")
	}
	arg := ""
	if len(args) > 2 {
		arg = args[2]
	}
	// As csc: the endpoint string is the dial target (so grpc-go derives the authority from it)
	// and a custom dialer resolves it.
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *endpoint, grpc.WithInsecure(), grpc.WithDialer(func(string, time.Duration) (net.Conn, error) {
		proto, addr := protoAddr(*endpoint)
		return net.DialTimeout(proto, addr, *timeout)
	}))
	if err != nil {
		fail(14, err.Error())
	}
	defer conn.Close()
	res, err := call(ctx, conn, args[0]+" "+args[1], arg)
	if err != nil {
		st, _ := status.FromError(err)
		fail(int(st.Code()), st.Message())
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func call(ctx context.Context, conn *grpc.ClientConn, cmd, arg string) (interface{}, error) {
	id, ctl, node := csi.NewIdentityClient(conn), csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	switch cmd {
	case "identity plugin-info":
		return id.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	case "identity probe":
		// Several calls on one connection: the second and later requests reuse HPACK's dynamic
		// table, which is what a connection-level repair of the request headers must survive.
		var res *csi.ProbeResponse
		var err error
		for i := 0; i < *count && err == nil; i++ {
			res, err = id.Probe(ctx, &csi.ProbeRequest{})
		}
		return res, err
	case "node get-info":
		return node.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	case "node stage":
		return node.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: arg, StagingTargetPath: *staging, VolumeCapability: capability(), VolumeContext: volContext})
	case "node publish":
		return node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: arg, StagingTargetPath: *staging, TargetPath: *target, VolumeCapability: capability(), Readonly: *readOnly, VolumeContext: volContext})
	case "node unpublish":
		return node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: arg, TargetPath: *target})
	case "node unstage":
		return node.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: arg, StagingTargetPath: *staging})
	case "controller new":
		req := &csi.CreateVolumeRequest{Name: arg, VolumeCapabilities: []*csi.VolumeCapability{capability()}, Parameters: params}
		if *reqBytes > 0 {
			req.CapacityRange = &csi.CapacityRange{RequiredBytes: *reqBytes}
		}
		return ctl.CreateVolume(ctx, req)
	case "controller del":
		return ctl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: arg})
	case "controller list-volumes":
		return ctl.ListVolumes(ctx, &csi.ListVolumesRequest{})
	}
	fail(2, "unknown command: "+cmd)
	return nil, nil
}
