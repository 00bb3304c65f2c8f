# mkCluster: one declaration in, everything derived from it out (see nix/README.md).
#
# Evaluation happens in three steps:
#   1. schema.nix checks the declaration's shape and normalises it (throws at the first malformed attribute);
#   2. this file expands pools into nodes, resolves every node's class, profile, disk layout, system and ip pool, and
#      allocates addresses (throws when an ip pool runs out);
#   3. the semantic checks below collect every cross-reference and consistency error, and the outputs throw them
#      all at once, one "sendan: ..." line each.
# sendan-core's `spec::ClusterSpec::validate` repeats step 3 on the JSON document with the same messages.
{
  declaration,
  # Tests only: skip step 3 so that the Rust validator can be shown the same broken document.
  checked ? true,
}:
let
  b = builtins;
  util = import ./util.nix;
  ipv4 = import ./ipv4.nix;
  schema = import ./schema.nix;
  rules = import ./rules.nix;
  disko = import ./disko.nix;
  nixos = import ./nixos.nix;

  inherit (util)
    optional
    optionals
    quote
    joinAnd
    ;

  apiVersion = "sendan.dev/v1alpha1";

  d = schema.declaration.check "" declaration;

  names = b.attrNames;
  lookup = attrs: n: if n == null then null else attrs.${n} or null;
  known = attrs: n: n != null && attrs ? ${n};
  unknownRef =
    subject: kind: attrs: n:
    optional (n != null && !(attrs ? ${n})) "${subject} uses unknown ${kind} '${n}'";

  hostnameRule = "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";
  isHostname = n: b.stringLength n <= 63 && b.match "[a-z0-9]([a-z0-9-]*[a-z0-9])?" n != null;

  # Parsed ip pools: the declared attributes plus `net`, the parsed CIDR, and `ranges`, the reserved ranges as
  # integers.
  ipPools = b.mapAttrs (
    _: p:
    p
    // {
      net = ipv4.parseCidr p.cidr;
      ranges = map (r: {
        from = ipv4.parse r.from;
        to = ipv4.parse r.to;
        text = rangeText r;
      }) p.reserved;
    }
  ) d.ipPools;
  rangeText = r: if r.from == r.to then r.from else "${r.from}-${r.to}";
  poolDesc = n: "ip pool '${n}' (${d.ipPools.${n}.cidr})";

  # ---- pools and nodes ---------------------------------------------------------------------------------------

  pools = b.mapAttrs (
    name: p:
    p
    // {
      namePattern = if p.namePattern != null then p.namePattern else "${name}-{index}";
      ipPools =
        if b.isString p.ipPool then
          util.genAttrs p.racks (_: p.ipPool)
        else if p.ipPool == null then
          { }
        else
          p.ipPool;
    }
  ) d.pools;

  memberName =
    poolName: index: rack:
    b.replaceStrings
      [ "{index}" "{rack}" "{pool}" ]
      [ (util.padLeft pools.${poolName}.indexWidth "0" (toString index)) rack poolName ]
      pools.${poolName}.namePattern;

  hasIndex = pool: b.match ".*\\{index}.*" pool.namePattern != null;

  # Pool members, round-robin over the pool's racks: member i (from 1) is in racks[(i - 1) mod length racks].
  # A pool without racks or without {index} in its pattern generates nothing (both are reported below).
  generated = b.concatMap (
    poolName:
    let
      pool = pools.${poolName};
      n = b.length pool.racks;
    in
    optionals (n > 0 && hasIndex pool) (
      b.genList (
        i:
        let
          rack = b.elemAt pool.racks (util.mod i n);
        in
        {
          name = memberName poolName (i + 1) rack;
          value = {
            class = null;
            pool = poolName;
            generated = true;
            inherit rack;
            ipPool = pool.ipPools.${rack} or null;
            address = null;
            inherit (pool) interface;
            profile = null;
            diskLayout = null;
            system = null;
            bmc = null;
          };
        }
      ) pool.size
    )
  ) (names pools);

  declaredBy =
    map (n: {
      name = n;
      by = "in nodes";
    }) (names d.nodes)
    ++ map (g: {
      name = g.name;
      by = "by pool '${g.value.pool}'";
    }) generated;
  declarations = b.groupBy (x: x.name) declaredBy;

  # Static nodes win over generated ones of the same name (which is an error reported below).
  rawNodes =
    b.listToAttrs generated
    // b.mapAttrs (
      _: n:
      n
      // {
        generated = false;
      }
    ) d.nodes;

  firstNonNull = util.findFirst (x: x != null) null;
  # `HOST` or `HOST:PORT` (a port from 1 to 65535).
  bmcHostPort =
    a:
    let
      m = b.match "([A-Za-z0-9.-]+)(:([1-9][0-9]{0,4}))?" a;
      port = if m == null then null else b.elemAt m 2;
    in
    m != null && (port == null || (b.fromJSON port >= 1 && b.fromJSON port <= 65535));
  substituteNode = name: s: if s == null then null else b.mapAttrs (_: v: if v == null then null else b.replaceStrings [ "{node}" ] [ name ] v) s;

  resolveNode =
    name: n:
    let
      pool = lookup pools n.pool;
      class = if n.class != null then n.class else if pool != null then pool.class else null;
      classDef = lookup d.classes class;
      profile = firstNonNull [
        n.profile
        (pool.profile or null)
        (classDef.profile or null)
      ];
      diskLayout = firstNonNull [
        n.diskLayout
        (pool.diskLayout or null)
        (classDef.diskLayout or null)
      ];
      ipPool = if n.ipPool != null then n.ipPool else pool.ipPools.${n.rack} or null;
    in
    {
      inherit class profile diskLayout;
      inherit (n) pool generated rack;
      system = substituteNode name (
        if n.system != null then n.system else (lookup d.profiles profile).system or null
      );
      network = {
        inherit (n) interface address;
        inherit ipPool;
        allocated = n.address == null;
      };
    }
    # Only a node with a BMC says so (its unset fields left out), so specs without BMCs keep their digests.
    // (if n.bmc == null then { } else {
      bmc = b.removeAttrs n.bmc (b.filter (k: n.bmc.${k} == null) (b.attrNames n.bmc));
    });

  resolved = b.mapAttrs resolveNode rawNodes;

  # ---- address allocation ------------------------------------------------------------------------------------

  peerAddresses = util.mapAttrsToList (_: p: p.address) d.bgp.peers;
  staticAddresses = b.concatMap (n: optional (!resolved.${n}.network.allocated) resolved.${n}.network.address) (
    names resolved
  );
  # Addresses allocation never hands out: static node addresses, gateways and BGP peers.
  taken = b.listToAttrs (
    map (a: {
      name = toString (ipv4.parse a);
      value = true;
    }) (staticAddresses ++ peerAddresses ++ b.filter (g: g != null) (util.mapAttrsToList (_: p: p.gateway) d.ipPools))
  );

  # Within each ip pool, nodes without a static address take the lowest free usable address in the order of their
  # names, skipping the gateway, reserved ranges, static node addresses and BGP peer addresses.
  allocateIn =
    poolName:
    let
      p = ipPools.${poolName};
      last = ipv4.usableLast p.net;
      wanting = util.sortStrings (
        b.filter (
          n: resolved.${n}.network.allocated && resolved.${n}.network.ipPool == poolName
        ) (names resolved)
      );
      nextFree =
        a:
        let
          range = util.findFirst (r: a >= r.from && a <= r.to) null p.ranges;
        in
        if a > last then
          null
        else if range != null then
          nextFree (range.to + 1)
        else if taken ? ${toString a} then
          nextFree (a + 1)
        else
          a;
      exhausted =
        node:
        let
          np = resolved.${node}.pool;
          what = "${poolDesc poolName} has no free address for ${node}";
        in
        util.fail (if np != null then "pool '${np}' is exhausted: ${what}" else what);
      step =
        st: node:
        let
          a = nextFree st.cursor;
        in
        if a == null then
          exhausted node
        else
          {
            cursor = a + 1;
            out = st.out ++ [
              {
                name = node;
                value = ipv4.format a;
              }
            ];
          };
    in
    (b.foldl' step {
      cursor = ipv4.usableFirst p.net;
      out = [ ];
    } wanting).out;

  allocated = b.listToAttrs (b.concatMap allocateIn (names ipPools));

  nodes = b.mapAttrs (
    name: n:
    n
    // {
      network = n.network // {
        address = if n.network.allocated then allocated.${name} or null else n.network.address;
      };
    }
  ) resolved;

  membersOf = pool: b.filter (n: resolved.${n}.pool == pool) (names resolved);

  # ---- semantic checks ---------------------------------------------------------------------------------------

  nameErrors =
    optional (!(isHostname d.name)) "cluster name '${d.name}' is not valid: ${hostnameRule}"
    ++ b.concatMap (
      n: optional (!(isHostname n)) "node name '${n}' is not a valid hostname: ${hostnameRule}"
    ) (names rawNodes);

  siteErrors =
    b.concatMap (r: unknownRef "rack '${r}'" "datacenter" d.datacenters d.racks.${r}.datacenter) (names d.racks)
    ++ b.concatMap (
      sw:
      let
        racks = b.filter (r: b.elem sw d.racks.${r}.switches) (names d.racks);
      in
      optional (b.length racks > 1) "switch '${sw}' is declared in racks ${joinAnd (map quote racks)}"
    ) (util.unique (b.concatMap (r: d.racks.${r}.switches) (names d.racks)))
    ++ b.concatMap (
      pair:
      let
        x = b.elemAt pair 0;
        y = b.elemAt pair 1;
      in
      optional (d.vlans.${x}.id == d.vlans.${y}.id) "vlans '${x}' and '${y}' both use id ${toString d.vlans.${x}.id}"
    ) (util.pairs (names d.vlans))
    ++ optional (d.bgp.peers != { } && d.bgp.asn == null) "bgp declares peers but no asn for the cluster"
    ++ b.concatMap (p: unknownRef "bgp peer '${p}'" "rack" d.racks d.bgp.peers.${p}.rack) (names d.bgp.peers);

  ipPoolErrors =
    b.concatMap (
      n:
      let
        p = ipPools.${n};
        gw = ipv4.parse p.gateway;
        subject = "ip pool '${n}'";
      in
      unknownRef subject "vlan" d.vlans p.vlan
      ++ optional (p.gateway != null && !(ipv4.isUsable p.net gw))
        "${subject}: gateway ${p.gateway} is not a usable address in ${p.cidr}"
      ++ b.concatMap (
        r:
        if r.from > r.to then
          [ "${subject}: reserved range ${r.text} is empty (its start is after its end)" ]
        else
          optional (!(ipv4.contains p.net r.from && ipv4.contains p.net r.to))
            "${subject}: reserved range ${r.text} is not inside ${p.cidr}"
      ) p.ranges
    ) (names ipPools)
    ++ b.concatMap (
      pair:
      let
        x = b.elemAt pair 0;
        y = b.elemAt pair 1;
      in
      optional (ipv4.overlaps ipPools.${x}.net ipPools.${y}.net)
        "ip pools '${x}' (${ipPools.${x}.cidr}) and '${y}' (${ipPools.${y}.cidr}) overlap"
    ) (util.pairs (names ipPools));

  classErrors = b.concatMap (
    c:
    unknownRef "class '${c}'" "profile" d.profiles d.classes.${c}.profile
    ++ unknownRef "class '${c}'" "disk layout" d.diskLayouts d.classes.${c}.diskLayout
  ) (names d.classes);

  poolErrors = b.concatMap (
    n:
    let
      p = pools.${n};
      subject = "pool '${n}'";
    in
    unknownRef subject "class" d.classes p.class
    ++ unknownRef subject "profile" d.profiles p.profile
    ++ unknownRef subject "disk layout" d.diskLayouts p.diskLayout
    ++ b.concatMap (unknownRef subject "rack" d.racks) p.racks
    ++ optional (p.size > 0 && p.racks == [ ]) "${subject} has size ${toString p.size} but no racks to place its nodes in"
    ++ optional (!(hasIndex p)) "${subject}: namePattern '${p.namePattern}' must contain {index}"
    ++ b.concatLists (
      b.genList (
        k:
        let
          w = b.elemAt p.maintenance k;
          index = toString (k + 1);
        in
        optional (b.match "([01][0-9]|2[0-3]):[0-5][0-9]" w.start == null)
          "${subject}: maintenance window ${index} starts at '${w.start}', which is not HH:MM (UTC)"
        ++ optional (w.minutes < 1 || w.minutes > 10080)
          "${subject}: maintenance window ${index} lasts ${toString w.minutes} minutes; it must last 1 to 10080 (a week)"
        ++ map (
          day: "${subject}: maintenance window ${index} names day '${day}'; days are mon, tue, wed, thu, fri, sat, sun"
        ) (b.filter (day: !(b.elem day [ "mon" "tue" "wed" "thu" "fri" "sat" "sun" ])) w.days)
      ) (b.length p.maintenance)
    )
    ++ b.concatMap (r: optional (!(p.ipPools ? ${r})) "${subject} names no ip pool for its rack '${r}'") p.racks
    ++ b.concatMap (
      r:
      optional (!(b.elem r p.racks)) "${subject} names an ip pool for rack '${r}', which is not one of its racks"
      ++ unknownRef subject "ip pool" d.ipPools p.ipPools.${r}
    ) (names p.ipPools)
  ) (names pools);

  systemErrors =
    subject: s:
    optional (s == null || (s.flake == null) == (s.storePath == null)) "${subject} must set exactly one of system.flake or system.storePath";

  profileErrors = b.concatMap (p: systemErrors "profile '${p}'" d.profiles.${p}.system) (names d.profiles);

  nodeErrors = b.concatMap (
    name:
    let
      n = resolved.${name};
      raw = rawNodes.${name};
      subject = "node ${name}";
      pool = lookup d.pools n.pool;
      p = lookup ipPools n.network.ipPool;
      a = ipv4.parse n.network.address;
      reserved = util.findFirst (r: a >= r.from && a <= r.to) null p.ranges;
      decls = declarations.${name};
    in
    optional (b.length decls > 1) "${subject} is declared ${
      if b.length decls == 2 then "twice" else "${toString (b.length decls)} times"
    }: ${joinAnd (util.sortStrings (map (x: x.by) decls))}"
    ++ unknownRef subject "pool" d.pools n.pool
    ++ (
      if n.class == null then
        [ "${subject} has no class: set class, or put the node in a pool" ]
      else
        unknownRef subject "class" d.classes n.class
    )
    ++ optional (pool != null && raw.class != null && raw.class != pool.class)
      "${subject} has class '${raw.class}' but its pool '${n.pool}' has class '${pool.class}'"
    ++ unknownRef subject "rack" d.racks n.rack
    ++ (
      if n.network.ipPool == null then
        [ "${subject} has no ip pool: set ipPool on the node, or one for rack '${n.rack}' on its pool" ]
      else
        unknownRef subject "ip pool" d.ipPools n.network.ipPool
    )
    ++ (
      if n.profile == null then
        [ "${subject} has no profile: set profile on the node, its pool or its class" ]
      else
        unknownRef subject "profile" d.profiles n.profile
    )
    ++ (
      if n.diskLayout == null then
        [ "${subject} has no disk layout: set diskLayout on the node, its pool or its class" ]
      else
        unknownRef subject "disk layout" d.diskLayouts n.diskLayout
    )
    ++ optionals (known d.profiles n.profile || raw.system != null) (systemErrors subject n.system)
    ++ optionals (raw.bmc != null) (
      optional (raw.bmc.driver == "redfish" && b.match "https?://[^[:space:]]+" raw.bmc.address == null)
        "${subject}: bmc address '${raw.bmc.address}' is not an http:// or https:// URL (driver redfish)"
      ++ optional (raw.bmc.driver == "ipmi" && !(bmcHostPort raw.bmc.address))
        "${subject}: bmc address '${raw.bmc.address}' is not HOST or HOST:PORT (driver ipmi)"
      ++ b.concatMap (
        f:
        let
          v = raw.bmc.${f};
        in
        optional (v != null && !(util.hasPrefix "/" v)) "${subject}: bmc ${f} '${v}' is not an absolute path"
      ) [ "passwordFile" "caFile" ]
    )
    ++ optionals (!n.network.allocated && p != null) (
      if !(ipv4.isUsable p.net a) then
        [ "${subject}: address ${n.network.address} is not a usable address of ${poolDesc n.network.ipPool}" ]
      else if p.gateway == n.network.address then
        [ "${subject}: address ${n.network.address} is the gateway of ip pool '${n.network.ipPool}'" ]
      else
        optional (reserved != null)
          "${subject}: address ${n.network.address} is reserved in ip pool '${n.network.ipPool}' (${reserved.text})"
    )
  ) (names resolved);

  # Static node addresses and BGP peer addresses must be unique (allocation never hands out a taken one).
  addressErrors =
    let
      owners =
        map (n: {
          address = resolved.${n}.network.address;
          node = true;
          who = n;
        }) (b.filter (n: !resolved.${n}.network.allocated) (names resolved))
        ++ util.mapAttrsToList (p: peer: {
          inherit (peer) address;
          node = false;
          who = "bgp peer '${p}'";
        }) d.bgp.peers;
      byAddress = b.groupBy (o: o.address) owners;
      describeOwners =
        os:
        let
          nodeNames = util.sortStrings (map (o: o.who) (b.filter (o: o.node) os));
          peers = util.sortStrings (map (o: o.who) (b.filter (o: !o.node) os));
        in
        if peers == [ ] then
          "nodes ${joinAnd nodeNames}"
        else
          joinAnd (map (n: "node ${n}") nodeNames ++ peers);
    in
    b.concatMap (
      a: optional (b.length byAddress.${a} > 1) "duplicate address ${a}: ${describeOwners byAddress.${a}}"
    ) (names byAddress);

  ruleErrors =
    b.concatMap (
      r:
      let
        rule = d.enrollmentRules.${r};
        subject = "enrollment rule '${r}'";
      in
      optional ((rule.bind.node == null) == (rule.bind.pool == null)) "${subject} must bind to exactly one of node or pool"
      ++ unknownRef subject "node" rawNodes rule.bind.node
      ++ unknownRef subject "pool" d.pools rule.bind.pool
      ++ unknownRef subject "class" d.classes rule.bind.class
      ++ unknownRef subject "profile" d.profiles rule.bind.profile
      ++ b.concatMap (unknownRef subject "rack" d.racks) (if rule.match.racks == null then [ ] else rule.match.racks)
      ++ b.concatMap (
        sp: optional (!(b.elem sp.switch allSwitches)) "${subject} uses unknown switch '${sp.switch}'"
      ) (if rule.match.switchPorts == null then [ ] else rule.match.switchPorts)
      ++ rules.neverMatches r rule.match
    ) (names d.enrollmentRules)
    ++ rules.overlaps d.enrollmentRules;
  allSwitches = b.concatMap (r: d.racks.${r}.switches) (names d.racks);

  layoutErrors = b.concatMap (n: disko.errors n d.diskLayouts.${n}) (names d.diskLayouts);

  serviceErrors = b.concatMap (
    s:
    let
      svc = d.services.${s};
      subject = "service '${s}'";
      h = svc.health;
      probes = b.filter (x: x != null) [ h.http h.tcp h.exec ];
      allowedRacks = svc.constraints.racks;
      eligible = b.filter (n: allowedRacks == null || b.elem resolved.${n}.rack allowedRacks) (
        util.unique (b.concatMap membersOf svc.pools)
      );
      capacity = b.length eligible * svc.constraints.maxPerNode;
      poolErrs = b.concatMap (
        p:
        if !(d.pools ? ${p}) then
          [ "${subject} uses unknown pool '${p}'" ]
        else
          optional (membersOf p == [ ]) "${subject} selects pool '${p}' which is empty"
      ) svc.pools;
    in
    optional (svc.package == null && svc.command == null) "${subject} needs a package or a command"
    ++ optionals (h != null) (
      optional (b.length probes != 1) "${subject}: health must set exactly one of http, tcp or exec"
      ++ optional (h.timeoutSeconds > h.intervalSeconds)
        "${subject}: health.timeoutSeconds (${toString h.timeoutSeconds}) must not exceed intervalSeconds (${toString h.intervalSeconds})"
    )
    ++ optional (svc.update.canary > svc.replicas)
      "${subject}: update.canary (${toString svc.update.canary}) must not exceed replicas (${toString svc.replicas})"
    ++ optional (svc.update.healthyDeadlineSeconds <= svc.update.minHealthySeconds)
      "${subject}: update.healthyDeadlineSeconds (${toString svc.update.healthyDeadlineSeconds}) must exceed minHealthySeconds (${toString svc.update.minHealthySeconds})"
    ++ b.concatMap (unknownRef subject "rack" d.racks) (if allowedRacks == null then [ ] else allowedRacks)
    ++ b.concatMap (
      p: optional (b.match "[a-z][a-z0-9_]*" p == null)
        "${subject}: port name '${p}' must start with a lower-case letter and hold only lower-case letters, digits and '_'"
    ) (names svc.ports)
    ++ (
      let
        statics = b.filter (p: svc.ports.${p}.static != null) (names svc.ports);
      in
      b.concatLists (
        b.genList (
          i:
          let
            first = b.elemAt statics i;
            n = svc.ports.${first}.static;
            later = b.filter (p: svc.ports.${p}.static == n) (b.genList (j: b.elemAt statics (i + 1 + j)) (b.length statics - i - 1));
          in
          optional (later != [ ]) "${subject}: ports '${first}' and '${b.head later}' both use static port ${toString n}"
        ) (b.length statics)
      )
    )
    ++ optionals (h != null) (
      b.concatMap (
        probe: optional (probe != null && b.isString probe.port && !(svc.ports ? ${probe.port}))
          "${subject}: the health check's port '${probe.port}' is not one of its ports"
      ) [ h.http h.tcp ]
    )
    ++ optional (svc.budget.maxUnavailable != null && svc.budget.minHealthy != null)
      "${subject}: budget sets both maxUnavailable and minHealthy; set one"
    ++ optional (svc.budget.maxUnavailable == null && svc.budget.minHealthy != null && svc.budget.minHealthy > svc.replicas)
      "${subject}: budget.minHealthy (${toString svc.budget.minHealthy}) must not exceed replicas (${toString svc.replicas})"
    ++ optional (svc.reschedule.maxDelaySeconds < svc.reschedule.delaySeconds)
      "${subject}: reschedule.maxDelaySeconds (${toString svc.reschedule.maxDelaySeconds}) must not be less than delaySeconds (${toString svc.reschedule.delaySeconds})"
    ++ poolErrs
    ++ optional (poolErrs == [ ] && capacity < svc.replicas)
      "${subject} wants ${toString svc.replicas} replicas but at most ${toString capacity} fit: ${toString (b.length eligible)} eligible nodes, at most ${toString svc.constraints.maxPerNode} per node"
  ) (names d.services);

  errors =
    nameErrors
    ++ siteErrors
    ++ ipPoolErrors
    ++ classErrors
    ++ poolErrors
    ++ profileErrors
    ++ nodeErrors
    ++ addressErrors
    ++ ruleErrors
    ++ layoutErrors
    ++ serviceErrors;

  guard = x: if checked && errors != [ ] then throw (b.concatStringsSep "\n" (map (e: "sendan: ${e}") errors)) else x;

  # ---- outputs -----------------------------------------------------------------------------------------------

  specDocument = {
    inherit apiVersion;
    kind = "ClusterSpec";
    inherit (d)
      name
      datacenters
      racks
      vlans
      bgp
      ipPools
      classes
      enrollmentRules
      services
      bootstrap
      ;
    pools = b.mapAttrs (
      _: p: {
        inherit (p)
          description
          class
          profile
          diskLayout
          racks
          ipPools
          size
          namePattern
          indexWidth
          maintenance
          ;
      }
    ) pools;
    diskLayouts = b.mapAttrs (
      _: l:
      l
      // {
        bootDisks = disko.bootDisks l;
      }
    ) d.diskLayouts;
    profiles = b.mapAttrs (
      _: p: {
        inherit (p) description platform system;
      }
    ) d.profiles;
    inherit nodes;
  };

  spec = guard specDocument;

  installPlan =
    name:
    let
      n = spec.nodes.${name};
      p = spec.ipPools.${n.network.ipPool};
      net = ipv4.parseCidr p.cidr;
    in
    {
      inherit apiVersion;
      kind = "InstallPlan";
      cluster = spec.name;
      node = name;
      hostname = name;
      inherit (n)
        class
        pool
        rack
        profile
        system
        ;
      platform = spec.profiles.${n.profile}.platform;
      network = {
        inherit (n.network) interface ipPool address;
        inherit (p) cidr gateway dns tagged;
        prefixLength = net.prefixLength;
        vlan =
          if p.vlan == null then
            null
          else
            {
              name = p.vlan;
              id = spec.vlans.${p.vlan}.id;
            };
      };
      diskLayout = {
        name = n.diskLayout;
        inherit (spec.diskLayouts.${n.diskLayout}) bootDisks disko;
      };
      inherit (spec) bootstrap;
    };

  installPlans = b.mapAttrs (name: _: installPlan name) spec.nodes;

  # Segments are the ip pools in use; `testVlan` numbers them 1.. for a VM test driver's virtual switches.
  segmentNames = b.filter (p: b.any (n: nodes.${n}.network.ipPool == p) (names nodes)) (names spec.ipPools);
  testVlan = p: 1 + b.length (b.filter (q: q < p) segmentNames);

  topology = guard {
    inherit (spec) name;
    racks = b.mapAttrs (
      r: rack: {
        inherit (rack) datacenter switches;
        nodes = b.filter (n: nodes.${n}.rack == r) (names nodes);
      }
    ) spec.racks;
    segments = util.genAttrs segmentNames (
      p:
      let
        pool = spec.ipPools.${p};
      in
      {
        inherit (pool) cidr gateway tagged;
        vlan = if pool.vlan == null then null else spec.vlans.${pool.vlan}.id;
        testVlan = testVlan p;
      }
    );
    nodes = b.mapAttrs (
      name: n:
      let
        plan = installPlans.${name};
      in
      {
        inherit (n) rack class pool;
        inherit (plan.network) address prefixLength gateway interface;
        segment = n.network.ipPool;
        testVlan = testVlan n.network.ipPool;
      }
    ) nodes;
    links = map (
      name:
      let
        n = nodes.${name};
        switches = spec.racks.${n.rack}.switches;
      in
      {
        node = name;
        switch = if switches == [ ] then null else b.head switches;
        segment = n.network.ipPool;
        address = "${n.network.address}/${toString installPlans.${name}.network.prefixLength}";
      }
    ) (names nodes);
    bgpPeers = spec.bgp.peers;
  };
in
{
  inherit spec installPlans topology;

  nixosConfigurations =
    arg:
    nixos.configurations {
      inherit arg spec installPlans;
      profiles = d.profiles;
    };

  # Tests only: the document before the semantic checks, and the messages they produce.
  unchecked = {
    spec = specDocument;
    inherit errors;
  };
}
