# An example cluster declaration: one datacenter, two racks, three statically placed control-plane members, a
# worker pool and a storage pool spread across both racks. Copy it and change names, addresses and hardware
# policies to match your site; nix/README.md documents every attribute.
#
#   nix-instantiate --eval --strict --json nix/examples/spec.nix   # the ClusterSpec document
#   nix-instantiate --eval --strict --json nix/examples/cluster.nix -A installPlans.worker-01
{
  name = "fra1-prod";

  datacenters.fra1 = {
    description = "Frankfurt, hall 3";
    location = "Frankfurt am Main, DE";
  };

  racks = {
    r01 = {
      datacenter = "fra1";
      switches = [ "r01-tor-a" "r01-tor-b" ];
    };
    r02 = {
      datacenter = "fra1";
      switches = [ "r02-tor-a" "r02-tor-b" ];
    };
  };

  vlans = {
    prod = {
      id = 20;
      description = "Routed production network; native VLAN on the server ports, so also the PXE network";
    };
    storage = {
      id = 30;
      description = "Storage replication traffic, tagged on the storage servers' ports";
    };
  };

  # Every rack's top-of-rack pair peers with the cluster (a private 2-byte ASN per rack, one for the cluster).
  bgp = {
    asn = 65020;
    peers = {
      r01-tor-a = { address = "10.20.1.2"; asn = 65101; rack = "r01"; };
      r01-tor-b = { address = "10.20.1.3"; asn = 65101; rack = "r01"; };
      r02-tor-a = { address = "10.20.2.2"; asn = 65102; rack = "r02"; };
      r02-tor-b = { address = "10.20.2.3"; asn = 65102; rack = "r02"; };
    };
  };

  ipPools = {
    r01-prod = {
      cidr = "10.20.1.0/24";
      gateway = "10.20.1.1";
      dns = [ "10.20.0.53" "10.20.0.54" ];
      vlan = "prod";
      # .1-.9: gateway, switches and out-of-band gear; .240-.254: the DHCP range the netboot installer uses.
      reserved = [ "10.20.1.1-10.20.1.9" "10.20.1.240-10.20.1.254" ];
    };
    r02-prod = {
      cidr = "10.20.2.0/24";
      gateway = "10.20.2.1";
      dns = [ "10.20.0.53" "10.20.0.54" ];
      vlan = "prod";
      reserved = [ "10.20.2.1-10.20.2.9" "10.20.2.240-10.20.2.254" ];
    };
    r01-storage = {
      cidr = "10.30.1.0/26";
      gateway = "10.30.1.1";
      dns = [ "10.20.0.53" "10.20.0.54" ];
      vlan = "storage";
      tagged = true;
      reserved = [ "10.30.1.1-10.30.1.3" ];
    };
    r02-storage = {
      cidr = "10.30.2.0/26";
      gateway = "10.30.2.1";
      dns = [ "10.20.0.53" "10.20.0.54" ];
      vlan = "storage";
      tagged = true;
      reserved = [ "10.30.2.1-10.30.2.3" ];
    };
  };

  # Memory minimums compare with what the kernel reports (MemTotal), a few percent below the installed RAM:
  # 60GiB admits a 64 GiB machine, 120GiB a 128 GiB one.
  classes = {
    control = {
      description = "Control-plane servers: Sendan's Raft members";
      hardware = {
        minCpuThreads = 16;
        minMemory = "60GiB";
        disks = [ { count = 2; minSize = "400GB"; rotational = false; } ];
        nics = { minCount = 2; minSpeedMbps = 10000; };
      };
      profile = "control-plane";
      diskLayout = "mirrored-root";
    };
    compute = {
      description = "General compute nodes running native services";
      hardware = {
        minCpuThreads = 32;
        minMemory = "120GiB";
        virtualization = true;
        disks = [ { count = 2; minSize = "800GB"; rotational = false; } ];
        nics = { minCount = 2; minSpeedMbps = 25000; };
      };
      profile = "worker";
      diskLayout = "mirrored-root";
    };
    storage = {
      description = "Storage servers: an NVMe system disk and four or more large HDDs";
      hardware = {
        minCpuThreads = 16;
        minMemory = "120GiB";
        disks = [
          { count = 1; minSize = "400GB"; rotational = false; }
          { count = 4; minSize = "8TB"; rotational = true; }
        ];
        nics = { minCount = 2; minSpeedMbps = 25000; };
      };
      profile = "storage";
      diskLayout = "storage-zfs";
    };
  };

  pools = {
    # The control plane has no generated members: cp-1..cp-3 are placed statically below.
    control-plane = {
      class = "control";
      racks = [ "r01" "r02" ];
      ipPool = { r01 = "r01-prod"; r02 = "r02-prod"; };
    };
    workers = {
      class = "compute";
      racks = [ "r01" "r02" ];
      ipPool = { r01 = "r01-prod"; r02 = "r02-prod"; };
      size = 6;
      namePattern = "worker-{index}";
      # Rollouts and drains that are not forced disrupt workers only at night (UTC), Monday to Friday.
      maintenance = [ { days = [ "mon" "tue" "wed" "thu" "fri" ]; start = "01:00"; minutes = 240; } ];
    };
    storage = {
      class = "storage";
      racks = [ "r01" "r02" ];
      ipPool = { r01 = "r01-storage"; r02 = "r02-storage"; };
      size = 4;
      namePattern = "storage-{index}";
    };
  };

  nodes = {
    cp-1 = { pool = "control-plane"; rack = "r01"; address = "10.20.1.11"; };
    cp-2 = { pool = "control-plane"; rack = "r02"; address = "10.20.2.11"; };
    cp-3 = { pool = "control-plane"; rack = "r01"; address = "10.20.1.12"; };
  };

  # Higher priority wins. The control-plane machines are bound by serial number to their fixed node ids; every
  # other machine joins the pool its hardware fits, in the racks the cluster owns.
  enrollmentRules = {
    cp-1 = {
      priority = 100;
      match.dmiSerials = [ "CZ2241A7KQ" ];
      bind.node = "cp-1";
    };
    cp-2 = {
      priority = 100;
      match.dmiSerials = [ "CZ2241A7KR" ];
      bind.node = "cp-2";
    };
    cp-3 = {
      priority = 100;
      match.dmiSerials = [ "CZ2241A7L0" ];
      bind.node = "cp-3";
    };
    storage-servers = {
      description = "Anything with five or more disks is a storage server";
      priority = 50;
      match = {
        diskCount.min = 5;
        racks = [ "r01" "r02" ];
      };
      bind.pool = "storage";
    };
    compute-servers = {
      priority = 50;
      match = {
        diskCount.max = 4;
        cpuThreads.min = 32;
        racks = [ "r01" "r02" ];
      };
      bind.pool = "workers";
    };
  };

  diskLayouts = {
    # Two NVMe disks: an ESP on each (profiles/mirrored-boot.nix installs GRUB to both), the rest mirrored with
    # mdadm for the root file system.
    mirrored-root = {
      description = "Two SSDs, RAID1 root";
      disko.devices = {
        disk = {
          os-a = {
            selector = { index = 0; rotational = false; minSize = "400GB"; };
            content = {
              type = "gpt";
              partitions = {
                ESP = {
                  size = "1G";
                  type = "EF00";
                  content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; mountOptions = [ "umask=0077" ]; };
                };
                root = { size = "100%"; content = { type = "mdraid"; name = "root"; }; };
              };
            };
          };
          os-b = {
            selector = { index = 1; rotational = false; minSize = "400GB"; };
            content = {
              type = "gpt";
              partitions = {
                ESP = {
                  size = "1G";
                  type = "EF00";
                  content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot-fallback"; mountOptions = [ "umask=0077" ]; };
                };
                root = { size = "100%"; content = { type = "mdraid"; name = "root"; }; };
              };
            };
          };
        };
        mdadm.root = {
          level = 1;
          content = { type = "filesystem"; format = "ext4"; mountpoint = "/"; mountOptions = [ "noatime" ]; };
        };
      };
    };

    # One NVMe system disk and four HDDs in a raidz2 pool for data.
    storage-zfs = {
      description = "NVMe system disk, ZFS raidz2 over four HDDs";
      disko.devices = {
        disk = {
          system = {
            selector = { rotational = false; minSize = "400GB"; };
            content = {
              type = "gpt";
              partitions = {
                ESP = {
                  size = "1G";
                  type = "EF00";
                  content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; mountOptions = [ "umask=0077" ]; };
                };
                swap = { size = "16G"; content = { type = "swap"; randomEncryption = true; }; };
                root = { size = "100%"; content = { type = "filesystem"; format = "ext4"; mountpoint = "/"; }; };
              };
            };
          };
          data1 = {
            selector = { index = 0; rotational = true; minSize = "8TB"; };
            content = { type = "gpt"; partitions.zfs = { size = "100%"; content = { type = "zfs"; pool = "tank"; }; }; };
          };
          data2 = {
            selector = { index = 1; rotational = true; minSize = "8TB"; };
            content = { type = "gpt"; partitions.zfs = { size = "100%"; content = { type = "zfs"; pool = "tank"; }; }; };
          };
          data3 = {
            selector = { index = 2; rotational = true; minSize = "8TB"; };
            content = { type = "gpt"; partitions.zfs = { size = "100%"; content = { type = "zfs"; pool = "tank"; }; }; };
          };
          data4 = {
            selector = { index = 3; rotational = true; minSize = "8TB"; };
            content = { type = "gpt"; partitions.zfs = { size = "100%"; content = { type = "zfs"; pool = "tank"; }; }; };
          };
        };
        zpool.tank = {
          mode = "raidz2";
          options.ashift = "12";
          rootFsOptions = { compression = "zstd"; atime = "off"; };
          datasets.blobs = { mountpoint = "/srv/blobs"; options.recordsize = "1M"; };
        };
      };
    };
  };

  # Every node builds from the fleet flake; `{node}` becomes the node's name.
  profiles = {
    control-plane = {
      description = "Sendan server (Raft member), SSH, monitoring";
      modules = [ ./profiles/control-plane.nix ];
      system.flake = "git+https://git.acme.internal/infra/fleet?ref=main#nixosConfigurations.{node}.config.system.build.toplevel";
    };
    worker = {
      modules = [ ./profiles/worker.nix ];
      system.flake = "git+https://git.acme.internal/infra/fleet?ref=main#nixosConfigurations.{node}.config.system.build.toplevel";
    };
    storage = {
      modules = [ ./profiles/storage.nix ];
      system.flake = "git+https://git.acme.internal/infra/fleet?ref=main#nixosConfigurations.{node}.config.system.build.toplevel";
    };
  };

  services = {
    edge-proxy = {
      description = "TLS-terminating HTTP proxy in front of the internal APIs";
      package = "git+https://git.acme.internal/platform/edge-proxy?ref=v2.4.1#default";
      command = [ "bin/edge-proxy" "--listen" "0.0.0.0:8443" "--admin" "0.0.0.0:$SENDAN_PORT_ADMIN" ];
      replicas = 4;
      pools = [ "workers" ];
      constraints = { maxPerNode = 1; spreadAcrossRacks = true; };
      # What one instance reserves of a node's reported CPU threads and memory.
      resources = { cpu = 2; memory = "1GiB"; };
      # `https` is the same on every node (the load balancer's target); `admin` is allocated per instance.
      ports = { https.static = 8443; admin = { }; };
      # Restarted in place twice within 5 minutes, then replaced on another node (at most 3 times an hour).
      restart = { attempts = 2; intervalSeconds = 300; delaySeconds = 2; };
      reschedule = { attempts = 3; intervalSeconds = 3600; delaySeconds = 10; maxDelaySeconds = 300; };
      placement = "spread";
      health = {
        http = { port = "admin"; path = "/ready"; };
        intervalSeconds = 5;
        timeoutSeconds = 2;
        unhealthyAfter = 3;
      };
      update = {
        maxParallel = 1;
        canary = 1;
        minHealthySeconds = 60;
        healthyDeadlineSeconds = 600;
        autoRevert = true;
      };
      # Host rollouts, drains, reprovisions and retirements never leave fewer than 3 of the 4 healthy.
      budget.maxUnavailable = 1;
    };
    blob-gateway = {
      description = "S3-compatible gateway over the storage pool's ZFS datasets";
      package = "git+https://git.acme.internal/platform/blobd?ref=v0.9.3#blobd";
      command = [ "bin/blobd" "--data" "/srv/blobs" "--listen" "0.0.0.0:7480" ];
      environment = { BLOBD_LOG = "info"; BLOBD_REPLICATION = "2"; };
      replicas = 2;
      pools = [ "storage" ];
      constraints = { maxPerNode = 1; spreadAcrossRacks = true; };
      resources = { cpu = 4; memory = "8GiB"; };
      ports.s3.static = 7480;
      health.tcp.port = "s3";
      update = { maxParallel = 1; minHealthySeconds = 120; healthyDeadlineSeconds = 900; };
      # Both replicas stay up: a host rollout waits for a storage node to be drained (`sendan node drain` moves
      # its gateway first) before it takes that node out.
      budget.minHealthy = 2;
    };
  };

  bootstrap = {
    servers = [ "https://10.20.1.11:7770" "https://10.20.2.11:7770" "https://10.20.1.12:7770" ];
    substituters = [ "https://cache.acme.internal" "https://cache.nixos.org" ];
    trustedPublicKeys = [
      "cache.acme.internal-1:RHeVZoyP/CiTbDRdfkhvKWfNJyfjWbgxlC24FhY8DvA="
      "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
    ];
  };
}
