# WIRING ONLY: nixosConfigurations is called with a stand-in for nixpkgs whose `lib.nixosSystem` returns its
# arguments, and the generated per-node module is called with a stand-in `lib` (mkDefault, optionalAttrs). These
# tests check what Sendan hands to nixosSystem and what its module sets; they do not evaluate NixOS (there is no
# nixpkgs here), so option types and NixOS behaviour are out of their reach.
let
  cluster = import ../../examples/cluster.nix;
  nixpkgs.lib.nixosSystem = args: args;
  lib = {
    mkDefault = v: { mkDefault = v; };
    optionalAttrs = cond: attrs: if cond then attrs else { };
  };
  configs = cluster.nixosConfigurations nixpkgs;
  # Each profile of the example has one module; the generated module follows the profile's modules.
  generated = node: (builtins.elemAt configs.${node}.modules 1) { inherit lib; };
  withDisko = cluster.nixosConfigurations {
    inherit nixpkgs;
    disko.nixosModules.disko = "the disko module";
    modules = [ "an extra module" ];
  };
in
{
  oneConfigurationPerNode = {
    expr = builtins.attrNames configs == builtins.attrNames cluster.spec.nodes;
    expected = true;
  };
  specialArgsCarryTheNodeAndItsPlan = {
    expr = {
      inherit (configs.cp-2.specialArgs.sendan) node;
      plan = configs.cp-2.specialArgs.sendan.plan == cluster.installPlans.cp-2;
      cluster = configs.cp-2.specialArgs.sendan.cluster == cluster.spec;
    };
    expected = {
      node = "cp-2";
      plan = true;
      cluster = true;
    };
  };
  profileModulesComeFirst = {
    expr = map toString [ (builtins.head configs.cp-1.modules) (builtins.head configs.worker-01.modules) ];
    expected = map toString [ ../../examples/profiles/control-plane.nix ../../examples/profiles/worker.nix ];
  };
  untaggedNodeNetwork = {
    expr = {
      inherit (generated "cp-1") networking systemd nixpkgs;
    };
    expected = {
      networking = {
        hostName = "cp-1";
        useDHCP = false;
        useNetworkd = true;
      };
      systemd.network = {
        enable = true;
        netdevs = { };
        networks."10-uplink" = {
          matchConfig.Name = "en*";
          address = [ "10.20.1.11/24" ];
          gateway = [ "10.20.1.1" ];
          dns = [ "10.20.0.53" "10.20.0.54" ];
        };
      };
      nixpkgs.hostPlatform.mkDefault = "x86_64-linux";
    };
  };
  taggedNodeNetworkUsesAVlanInterface = {
    expr = (generated "storage-02").systemd.network;
    expected = {
      enable = true;
      netdevs."20-vlan30" = {
        netdevConfig = {
          Kind = "vlan";
          Name = "vlan30";
        };
        vlanConfig.Id = 30;
      };
      networks = {
        "10-uplink" = {
          matchConfig.Name = "en*";
          vlan = [ "vlan30" ];
          networkConfig.LinkLocalAddressing = "no";
          linkConfig.RequiredForOnline = "carrier";
        };
        "20-vlan30" = {
          matchConfig.Name = "vlan30";
          address = [ "10.30.2.4/26" ];
          gateway = [ "10.30.2.1" ];
          dns = [ "10.20.0.53" "10.20.0.54" ];
        };
      };
    };
  };
  substitutersFromBootstrap = {
    expr = (generated "worker-01").nix.settings;
    expected = {
      substituters = [ "https://cache.acme.internal" "https://cache.nixos.org" ];
      trusted-public-keys = [
        "cache.acme.internal-1:RHeVZoyP/CiTbDRdfkhvKWfNJyfjWbgxlC24FhY8DvA="
        "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
      ];
    };
  };
  diskoAndExtraModulesAreAppended = {
    expr =
      let
        modules = withDisko.storage-01.modules;
        devices = (builtins.elemAt modules 3).disko.devices;
      in
      {
        count = builtins.length modules;
        disko = builtins.elemAt modules 2;
        extra = builtins.elemAt modules 4;
        systemDisk = removeAttrs devices.disk.system [ "content" ];
        esp = devices.disk.system.content.partitions.ESP;
        zpool = devices.zpool.tank.mode;
      };
    expected = {
      count = 5;
      disko = "the disko module";
      extra = "an extra module";
      systemDisk = {
        type = "disk";
        device = "/dev/disk/by-sendan/system";
      };
      esp = {
        size = "1G";
        type = "EF00";
        content = {
          type = "filesystem";
          format = "vfat";
          mountpoint = "/boot";
          mountOptions = [ "umask=0077" ];
          extraArgs = [ ];
        };
      };
      zpool = "raidz2";
    };
  };
}
