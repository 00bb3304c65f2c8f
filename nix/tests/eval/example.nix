# The example cluster's outputs: what `nix/examples` documents, pinned.
let
  cluster = import ../../examples/cluster.nix;
  inherit (cluster) spec installPlans topology;
in
{
  header = {
    expr = { inherit (spec) apiVersion kind name; };
    expected = {
      apiVersion = "sendan.dev/v1alpha1";
      kind = "ClusterSpec";
      name = "fra1-prod";
    };
  };
  specFileIsTheSpec = {
    expr = import ../../examples/spec.nix == spec;
    expected = true;
  };
  addresses = {
    # Control-plane members are static; pool members take the lowest free addresses of their rack's pool
    # after the reserved .1-.9 (prod) or .1-.3 (storage), in name order.
    expr = builtins.mapAttrs (_: n: n.network.address) spec.nodes;
    expected = {
      cp-1 = "10.20.1.11";
      cp-2 = "10.20.2.11";
      cp-3 = "10.20.1.12";
      storage-01 = "10.30.1.4";
      storage-02 = "10.30.2.4";
      storage-03 = "10.30.1.5";
      storage-04 = "10.30.2.5";
      worker-01 = "10.20.1.10";
      worker-02 = "10.20.2.10";
      worker-03 = "10.20.1.13";
      worker-04 = "10.20.2.12";
      worker-05 = "10.20.1.14";
      worker-06 = "10.20.2.13";
    };
  };
  placement = {
    expr = builtins.mapAttrs (_: n: "${n.class}/${toString n.pool}/${n.rack}/${n.profile}/${n.diskLayout}") spec.nodes;
    expected = {
      cp-1 = "control/control-plane/r01/control-plane/mirrored-root";
      cp-2 = "control/control-plane/r02/control-plane/mirrored-root";
      cp-3 = "control/control-plane/r01/control-plane/mirrored-root";
      storage-01 = "storage/storage/r01/storage/storage-zfs";
      storage-02 = "storage/storage/r02/storage/storage-zfs";
      storage-03 = "storage/storage/r01/storage/storage-zfs";
      storage-04 = "storage/storage/r02/storage/storage-zfs";
      worker-01 = "compute/workers/r01/worker/mirrored-root";
      worker-02 = "compute/workers/r02/worker/mirrored-root";
      worker-03 = "compute/workers/r01/worker/mirrored-root";
      worker-04 = "compute/workers/r02/worker/mirrored-root";
      worker-05 = "compute/workers/r01/worker/mirrored-root";
      worker-06 = "compute/workers/r02/worker/mirrored-root";
    };
  };
  hardwareSizesAreBytes = {
    expr = {
      memory = spec.classes.control.hardware.minMemoryBytes;
      hdd = (builtins.elemAt spec.classes.storage.hardware.disks 1).minSizeBytes;
    };
    expected = {
      memory = 60 * 1024 * 1024 * 1024;
      hdd = 8000000000000;
    };
  };
  bootDisksDefaultToDisksWithAnEsp = {
    expr = builtins.mapAttrs (_: l: l.bootDisks) spec.diskLayouts;
    expected = {
      mirrored-root = [ "os-a" "os-b" ];
      storage-zfs = [ "system" ];
    };
  };
  installPlanOfATaggedStorageNode = {
    expr = {
      inherit (installPlans.storage-02) kind node hostname class pool rack profile platform system network;
      layout = installPlans.storage-02.diskLayout.name;
      servers = installPlans.storage-02.bootstrap.servers;
    };
    expected = {
      kind = "InstallPlan";
      node = "storage-02";
      hostname = "storage-02";
      class = "storage";
      pool = "storage";
      rack = "r02";
      profile = "storage";
      platform = "x86_64-linux";
      system = {
        flake = "git+https://git.acme.internal/infra/fleet?ref=main#nixosConfigurations.storage-02.config.system.build.toplevel";
        storePath = null;
      };
      network = {
        interface = "en*";
        ipPool = "r02-storage";
        address = "10.30.2.4";
        cidr = "10.30.2.0/26";
        prefixLength = 26;
        gateway = "10.30.2.1";
        dns = [ "10.20.0.53" "10.20.0.54" ];
        vlan = {
          name = "storage";
          id = 30;
        };
        tagged = true;
      };
      layout = "storage-zfs";
      servers = [ "https://10.20.1.11:7770" "https://10.20.2.11:7770" "https://10.20.1.12:7770" ];
    };
  };
  everyNodeHasAPlan = {
    expr = builtins.attrNames installPlans == builtins.attrNames spec.nodes;
    expected = true;
  };
  topologyRacks = {
    expr = topology.racks;
    expected = {
      r01 = {
        datacenter = "fra1";
        switches = [ "r01-tor-a" "r01-tor-b" ];
        nodes = [ "cp-1" "cp-3" "storage-01" "storage-03" "worker-01" "worker-03" "worker-05" ];
      };
      r02 = {
        datacenter = "fra1";
        switches = [ "r02-tor-a" "r02-tor-b" ];
        nodes = [ "cp-2" "storage-02" "storage-04" "worker-02" "worker-04" "worker-06" ];
      };
    };
  };
  topologySegments = {
    expr = builtins.mapAttrs (_: s: "${s.cidr} vlan ${toString s.vlan} test ${toString s.testVlan}") topology.segments;
    expected = {
      r01-prod = "10.20.1.0/24 vlan 20 test 1";
      r01-storage = "10.30.1.0/26 vlan 30 test 2";
      r02-prod = "10.20.2.0/24 vlan 20 test 3";
      r02-storage = "10.30.2.0/26 vlan 30 test 4";
    };
  };
  topologyLinks = {
    expr = builtins.filter (l: l.node == "cp-2" || l.node == "storage-03") topology.links;
    expected = [
      {
        node = "cp-2";
        switch = "r02-tor-a";
        segment = "r02-prod";
        address = "10.20.2.11/24";
      }
      {
        node = "storage-03";
        switch = "r01-tor-a";
        segment = "r01-storage";
        address = "10.30.1.5/26";
      }
    ];
  };
  servicesAreDeclaredWithDefaults = {
    expr = {
      edge = spec.services.edge-proxy.update;
      blob = spec.services.blob-gateway.health;
    };
    expected = {
      edge = {
        maxParallel = 1;
        canary = 1;
        minHealthySeconds = 60;
        healthyDeadlineSeconds = 600;
        autoRevert = true;
      };
      blob = {
        http = null;
        tcp.port = "s3";
        exec = null;
        intervalSeconds = 10;
        timeoutSeconds = 2;
        unhealthyAfter = 3;
      };
    };
  };
}
