# The shape of a cluster declaration: every attribute `mkCluster` accepts, its type and its default. Checking a
# declaration against it normalises the declaration (defaults filled in, sizes in bytes, MACs and UUIDs
# lower-case, reserved addresses as ranges) and rejects unknown attributes, so a typo is an error rather than a
# silently ignored setting. Cross-references and address allocation are checked later, in cluster.nix.
let
  b = builtins;
  util = import ./util.nix;
  ipv4 = import ./ipv4.nix;
  t = import ./types.nix;
  inherit (t)
    record
    req
    opt
    renamed
    nullOr
    listOf
    attrsOf
    ;

  range = valueType: record {
    min = opt (nullOr valueType) null;
    max = opt (nullOr valueType) null;
  };

  # "10.0.1.1" or "10.0.1.1-10.0.1.9" -> { from; to; }.
  reservedRange = {
    name = "an address or range";
    check =
      path: v:
      let
        parts = if b.isString v then b.match "([^-]+)-([^-]+)" v else null;
        bounds = if parts == null then [ v v ] else parts;
        what = "an IPv4 address or range such as 10.0.1.1 or 10.0.1.1-10.0.1.9";
      in
      if !b.isString v then
        util.fail "${path} must be ${what}, got ${util.describe v}"
      else if !(b.all ipv4.isAddress bounds) then
        util.fail "${path}: '${v}' is not ${what}"
      else
        {
          from = b.elemAt bounds 0;
          to = b.elemAt bounds 1;
        };
  };

  # A pool's ip pool: one name for all its racks, or one per rack.
  ipPoolChoice = {
    name = "an ip pool name, or an attribute set of ip pool names by rack";
    check =
      path: v:
      if b.isString v || v == null then
        v
      else
        (attrsOf t.nonEmptyStr).check path v;
  };

  systemTarget = record {
    flake = opt (nullOr t.flakeRef) null;
    storePath = opt (nullOr t.storePath) null;
  };

  hardware = record {
    minCpuThreads = opt t.nat 0;
    minMemory = renamed "minMemoryBytes" (opt t.size 0);
    virtualization = opt t.bool false;
    disks = opt (listOf (record {
      count = opt t.positive 1;
      minSize = renamed "minSizeBytes" (opt t.size 0);
      maxSize = renamed "maxSizeBytes" (opt (nullOr t.size) null);
      rotational = opt (nullOr t.bool) null;
    })) [ ];
    nics = opt (record {
      minCount = opt t.nat 0;
      minSpeedMbps = opt (nullOr t.positive) null;
    }) { };
  };

  ruleMatch = record {
    machineIds = opt (nullOr (listOf t.machineId)) null;
    systemUuids = opt (nullOr (listOf t.uuid)) null;
    dmiSerials = opt (nullOr (listOf t.nonEmptyStr)) null;
    macs = opt (nullOr (listOf t.mac)) null;
    cpuThreads = opt (nullOr (range t.nat)) null;
    memory = renamed "memoryBytes" (opt (nullOr (range t.size)) null);
    diskCount = opt (nullOr (range t.nat)) null;
    racks = opt (nullOr (listOf t.nonEmptyStr)) null;
    switchPorts = opt (nullOr (listOf (record {
      switch = req t.nonEmptyStr;
      port = req t.nonEmptyStr;
    }))) null;
  };

  # disko's shape, restricted to the content types Sendan renders and checks. Optional disko settings that Sendan
  # does not model are rejected rather than passed through unchecked.
  filesystem = record {
    type = req (t.enum [ "filesystem" ]);
    format = req t.nonEmptyStr;
    mountpoint = opt (nullOr t.nonEmptyStr) null;
    mountOptions = opt (listOf t.str) [ ];
    extraArgs = opt (listOf t.str) [ ];
  };
  swap = record {
    type = req (t.enum [ "swap" ]);
    randomEncryption = opt t.bool false;
    resumeDevice = opt t.bool false;
  };
  mdraid = record {
    type = req (t.enum [ "mdraid" ]);
    name = req t.nonEmptyStr;
  };
  zfs = record {
    type = req (t.enum [ "zfs" ]);
    pool = req t.nonEmptyStr;
  };
  lvmPv = record {
    type = req (t.enum [ "lvm_pv" ]);
    vg = req t.nonEmptyStr;
  };
  partition = record {
    size = opt (nullOr t.nonEmptyStr) null;
    start = opt (nullOr t.nonEmptyStr) null;
    end = opt (nullOr t.nonEmptyStr) null;
    type = opt (nullOr t.nonEmptyStr) null;
    priority = opt (nullOr t.nat) null;
    content = opt (nullOr (t.tagged {
      inherit filesystem swap mdraid zfs;
      lvm_pv = lvmPv;
    })) null;
  };
  gpt = record {
    type = req (t.enum [ "gpt" ]);
    partitions = req (attrsOf partition);
  };
  diskSelector = record {
    index = opt t.nat 0;
    rotational = opt (nullOr t.bool) null;
    minSize = renamed "minSizeBytes" (opt (nullOr t.size) null);
    maxSize = renamed "maxSizeBytes" (opt (nullOr t.size) null);
    model = opt (nullOr t.nonEmptyStr) null;
  };
  disk = record {
    type = opt (t.enum [ "disk" ]) "disk";
    selector = opt diskSelector { };
    content = req (t.tagged { inherit gpt; });
  };
  mdadm = record {
    type = opt (t.enum [ "mdadm" ]) "mdadm";
    level = req t.nat;
    metadata = opt t.nonEmptyStr "1.2";
    content = req (t.tagged { inherit gpt filesystem; });
  };
  lvmVg = record {
    type = opt (t.enum [ "lvm_vg" ]) "lvm_vg";
    lvs = req (attrsOf (record {
      size = req t.nonEmptyStr;
      content = req (t.tagged { inherit filesystem swap; });
    }));
  };
  zpool = record {
    type = opt (t.enum [ "zpool" ]) "zpool";
    mode = opt t.str "";
    options = opt (attrsOf t.str) { };
    rootFsOptions = opt (attrsOf t.str) { };
    mountpoint = opt (nullOr t.nonEmptyStr) null;
    datasets = opt (attrsOf (record {
      type = opt (t.enum [ "zfs_fs" ]) "zfs_fs";
      mountpoint = opt (nullOr t.nonEmptyStr) null;
      options = opt (attrsOf t.str) { };
    })) { };
  };

  diskLayout = record {
    description = opt (nullOr t.str) null;
    bootDisks = opt (nullOr (listOf t.nonEmptyStr)) null;
    disko = req (record {
      devices = req (record {
        disk = opt (attrsOf disk) { };
        mdadm = opt (attrsOf mdadm) { };
        lvm_vg = opt (attrsOf lvmVg) { };
        zpool = opt (attrsOf zpool) { };
      });
    });
  };

  healthCheck = record {
    http = opt (nullOr (record {
      port = req t.portRef;
      path = opt t.nonEmptyStr "/";
    })) null;
    tcp = opt (nullOr (record { port = req t.portRef; })) null;
    exec = opt (nullOr (t.nonEmptyListOf t.nonEmptyStr)) null;
    intervalSeconds = opt t.positive 10;
    timeoutSeconds = opt t.positive 2;
    unhealthyAfter = opt t.positive 3;
  };
in
{
  declaration = record {
    name = req t.nonEmptyStr;

    datacenters = opt (attrsOf (record {
      description = opt (nullOr t.str) null;
      location = opt (nullOr t.str) null;
    })) { };

    racks = opt (attrsOf (record {
      datacenter = req t.nonEmptyStr;
      description = opt (nullOr t.str) null;
      switches = opt (listOf t.nonEmptyStr) [ ];
    })) { };

    vlans = opt (attrsOf (record {
      id = req (t.between 1 4094);
      description = opt (nullOr t.str) null;
    })) { };

    bgp = opt (record {
      asn = opt (nullOr t.asn) null;
      peers = opt (attrsOf (record {
        address = req t.address;
        asn = req t.asn;
        rack = opt (nullOr t.nonEmptyStr) null;
      })) { };
    }) { };

    ipPools = opt (attrsOf (record {
      cidr = req t.cidr;
      gateway = opt (nullOr t.address) null;
      dns = opt (listOf t.address) [ ];
      vlan = opt (nullOr t.nonEmptyStr) null;
      tagged = opt t.bool false;
      reserved = opt (listOf reservedRange) [ ];
    })) { };

    classes = opt (attrsOf (record {
      description = opt (nullOr t.str) null;
      hardware = opt hardware { };
      profile = opt (nullOr t.nonEmptyStr) null;
      diskLayout = opt (nullOr t.nonEmptyStr) null;
    })) { };

    pools = opt (attrsOf (record {
      description = opt (nullOr t.str) null;
      class = req t.nonEmptyStr;
      profile = opt (nullOr t.nonEmptyStr) null;
      diskLayout = opt (nullOr t.nonEmptyStr) null;
      racks = opt (listOf t.nonEmptyStr) [ ];
      ipPool = opt ipPoolChoice null;
      size = opt t.nat 0;
      namePattern = opt (nullOr t.nonEmptyStr) null;
      indexWidth = opt (t.between 1 6) 2;
      interface = opt t.nonEmptyStr "en*";
      # Weekly windows (UTC) in which rollouts and drains that are not forced may disrupt the pool's nodes;
      # none: always.
      maintenance = opt (listOf (record {
        days = opt (listOf t.nonEmptyStr) [ "mon" "tue" "wed" "thu" "fri" "sat" "sun" ];
        start = req t.nonEmptyStr;
        minutes = req t.nat;
      })) [ ];
    })) { };

    enrollmentRules = opt (attrsOf (record {
      description = opt (nullOr t.str) null;
      priority = req t.nat;
      match = opt ruleMatch { };
      bind = req (record {
        node = opt (nullOr t.nonEmptyStr) null;
        pool = opt (nullOr t.nonEmptyStr) null;
        class = opt (nullOr t.nonEmptyStr) null;
        profile = opt (nullOr t.nonEmptyStr) null;
      });
    })) { };

    diskLayouts = opt (attrsOf diskLayout) { };

    profiles = opt (attrsOf (record {
      description = opt (nullOr t.str) null;
      modules = opt (listOf t.anything) [ ];
      platform = opt t.nonEmptyStr "x86_64-linux";
      system = opt systemTarget { };
    })) { };

    nodes = opt (attrsOf (record {
      class = opt (nullOr t.nonEmptyStr) null;
      pool = opt (nullOr t.nonEmptyStr) null;
      rack = req t.nonEmptyStr;
      ipPool = opt (nullOr t.nonEmptyStr) null;
      address = opt (nullOr t.address) null;
      interface = opt t.nonEmptyStr "en*";
      profile = opt (nullOr t.nonEmptyStr) null;
      diskLayout = opt (nullOr t.nonEmptyStr) null;
      system = opt (nullOr systemTarget) null;
      # The node's BMC; the password is a file on the servers, never in the spec.
      bmc = opt (nullOr (record {
        driver = req (t.enum [ "redfish" "ipmi" ]);
        address = req t.nonEmptyStr;
        user = req t.nonEmptyStr;
        passwordFile = req t.nonEmptyStr;
        system = opt (nullOr t.nonEmptyStr) null;
        caFile = opt (nullOr t.nonEmptyStr) null;
      })) null;
    })) { };

    services = opt (attrsOf (record {
      description = opt (nullOr t.str) null;
      package = opt (nullOr t.package) null;
      command = opt (nullOr (t.nonEmptyListOf t.nonEmptyStr)) null;
      environment = opt (attrsOf t.str) { };
      replicas = opt t.nat 1;
      pools = req (t.nonEmptyListOf t.nonEmptyStr);
      constraints = opt (record {
        maxPerNode = opt t.positive 1;
        racks = opt (nullOr (listOf t.nonEmptyStr)) null;
        spreadAcrossRacks = opt t.bool false;
      }) { };
      health = opt (nullOr healthCheck) null;
      update = opt (record {
        maxParallel = opt t.positive 1;
        canary = opt t.nat 0;
        minHealthySeconds = opt t.nat 10;
        healthyDeadlineSeconds = opt t.positive 300;
        autoRevert = opt t.bool true;
      }) { };
      budget = opt (record {
        maxUnavailable = opt (nullOr t.nat) null;
        minHealthy = opt (nullOr t.nat) null;
      }) { };
      resources = opt (record {
        cpu = opt t.nat 0;
        memory = renamed "memoryBytes" (opt t.size 0);
      }) { };
      ports = opt (attrsOf (record {
        static = opt (nullOr t.port) null;
      })) { };
      restart = opt (record {
        attempts = opt t.nat 2;
        intervalSeconds = opt t.positive 300;
        delaySeconds = opt t.nat 1;
      }) { };
      reschedule = opt (record {
        attempts = opt t.nat 3;
        intervalSeconds = opt t.positive 3600;
        delaySeconds = opt t.nat 5;
        maxDelaySeconds = opt t.nat 300;
        backoff = opt (t.enum [ "constant" "exponential" ]) "exponential";
        unlimited = opt t.bool false;
      }) { };
      placement = opt (t.enum [ "binpack" "spread" ]) "binpack";
    })) { };

    bootstrap = req (record {
      servers = req (t.nonEmptyListOf t.url);
      substituters = opt (listOf t.url) [ ];
      trustedPublicKeys = opt (listOf t.publicKey) [ ];
    });
  };
}
