// Command etcd is the upstream etcd server, built from the
// go.etcd.io/etcd/server/v3 module pinned in ../../go.mod (the version that
// k8s.io/kubernetes itself pins).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
