# nixosConfigurations: one `nixpkgs.lib.nixosSystem` per declared node, from its profile's modules plus a module
# generated from its install plan (hostname, network, platform, substituters). nixpkgs is only touched here, and
# only when the caller passes it in.
let
  b = builtins;
  util = import ./util.nix;

  knownArgs = [
    "nixpkgs"
    "disko"
    "modules"
    "specialArgs"
  ];

  stripNulls =
    v:
    if b.isAttrs v then
      b.mapAttrs (_: stripNulls) (util.filterAttrs (_: x: x != null) v)
    else if b.isList v then
      map stripNulls v
    else
      v;

  # The layout as disko options. In the installed system disko only derives fileSystems and swap from it, and
  # those mount GPT partitions by label (disk-<disk>-<partition>), never by the disk's device path; the installer
  # partitions with its own rendering of the layout, in which each disk is the device its selector resolved to.
  diskoDevices =
    devices:
    stripNulls devices
    // {
      disk = b.mapAttrs (
        name: disk:
        removeAttrs (stripNulls disk) [ "selector" ]
        // {
          device = "/dev/disk/by-sendan/${name}";
        }
      ) devices.disk;
    };

  # The per-node module: what the install plan says about this machine, in NixOS options.
  nodeModule =
    plan:
    { lib, ... }:
    let
      net = plan.network;
      tagged = net.vlan != null && net.tagged;
      vlanName = "vlan${toString net.vlan.id}";
      addressing = {
        address = [ "${net.address}/${toString net.prefixLength}" ];
        gateway = util.optional (net.gateway != null) net.gateway;
        dns = net.dns;
      };
    in
    {
      networking.hostName = plan.hostname;
      networking.useDHCP = false;
      networking.useNetworkd = true;
      systemd.network.enable = true;
      systemd.network.netdevs = lib.optionalAttrs tagged {
        "20-${vlanName}" = {
          netdevConfig = {
            Kind = "vlan";
            Name = vlanName;
          };
          vlanConfig.Id = net.vlan.id;
        };
      };
      systemd.network.networks =
        if tagged then
          {
            "10-uplink" = {
              matchConfig.Name = net.interface;
              vlan = [ vlanName ];
              networkConfig.LinkLocalAddressing = "no";
              linkConfig.RequiredForOnline = "carrier";
            };
            "20-${vlanName}" = {
              matchConfig.Name = vlanName;
            }
            // addressing;
          }
        else
          {
            "10-uplink" = {
              matchConfig.Name = net.interface;
            }
            // addressing;
          };
      nixpkgs.hostPlatform = lib.mkDefault plan.platform;
      nix.settings = {
        substituters = plan.bootstrap.substituters;
        trusted-public-keys = plan.bootstrap.trustedPublicKeys;
      };
    };
in
{
  inherit nodeModule diskoDevices;

  configurations =
    {
      arg,
      spec,
      installPlans,
      profiles,
    }:
    let
      isNixpkgs = x: b.isAttrs x && x ? lib && x.lib ? nixosSystem;
      args = if isNixpkgs arg then { nixpkgs = arg; } else arg;
      unknown = b.filter (n: !(b.elem n knownArgs)) (b.attrNames args);
      diskoModule =
        if (args.disko or null) == null then
          null
        else if args.disko ? nixosModules then
          args.disko.nixosModules.disko
        else
          args.disko;
    in
    if !(b.isAttrs args) || !(args ? nixpkgs) then
      util.fail "nixosConfigurations needs nixpkgs: call it as nixosConfigurations nixpkgs or nixosConfigurations { nixpkgs = ...; disko = ...; }"
    else if unknown != [ ] then
      util.fail "nixosConfigurations got unknown argument '${b.head unknown}'; known arguments: ${b.concatStringsSep ", " knownArgs}"
    else
      b.mapAttrs (
        name: plan:
        args.nixpkgs.lib.nixosSystem {
          specialArgs = {
            sendan = {
              node = name;
              inherit plan;
              cluster = spec;
            };
          }
          // (args.specialArgs or { });
          modules =
            profiles.${plan.profile}.modules
            ++ [ (nodeModule plan) ]
            ++ util.optionals (diskoModule != null) [
              diskoModule
              { disko.devices = diskoDevices plan.diskLayout.disko.devices; }
            ]
            ++ (args.modules or [ ]);
        }
      ) installPlans;
}
