# Address allocation: deterministic, in name order, skipping the gateway, reserved ranges, BGP peers and static
# addresses.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
  util = import ../../lib/util.nix;
  generatedOf = decl: util.filterAttrs (_: n: n.generated) (lib.mkCluster decl).spec.nodes;
  addresses = decl: builtins.mapAttrs (_: n: n.network.address) (lib.mkCluster decl).spec.nodes;
in
{
  fixtureAddresses = {
    # rack1: .1 gateway, .2-.4 reserved (.2 is also the BGP peer), .5 cp-1 -> workers from .6; rack2: from .2.
    expr = addresses base;
    expected = {
      cp-1 = "10.0.1.5";
      cp-2 = "10.0.2.5";
      worker-01 = "10.0.1.6";
      worker-02 = "10.0.2.2";
      worker-03 = "10.0.1.7";
      worker-04 = "10.0.2.3";
    };
  };
  staticAddressesAreSkipped = {
    expr =
      (addresses (
        lib.recursiveUpdate base {
          nodes.cp-3 = {
            class = "control";
            rack = "rack1";
            ipPool = "rack1-v4";
            address = "10.0.1.6";
          };
        }
      )).worker-01;
    expected = "10.0.1.7";
  };
  membersAlternateOverRacks = {
    expr = builtins.mapAttrs (_: n: n.rack) (generatedOf (lib.recursiveUpdate base { pools.workers.size = 5; }));
    expected = {
      worker-01 = "rack1";
      worker-02 = "rack2";
      worker-03 = "rack1";
      worker-04 = "rack2";
      worker-05 = "rack1";
    };
  };
  growingAPoolKeepsEarlierAddresses = {
    expr =
      let
        before = addresses base;
        after = addresses (lib.recursiveUpdate base { pools.workers.size = 8; });
      in
      map (n: before.${n} == after.${n}) [ "worker-01" "worker-02" "worker-03" "worker-04" ];
    expected = [ true true true true ];
  };
  lastFreeAddressIsUsed = {
    # rack1 has 9 free addresses: a pool of 18 puts 9 members there and fills .6-.14.
    expr = (addresses (lib.recursiveUpdate base { pools.workers.size = 18; })).worker-17;
    expected = "10.0.1.14";
  };
  namePatterns = {
    expr = builtins.attrNames (
      generatedOf (lib.recursiveUpdate base {
        pools.workers = {
          namePattern = "{rack}-w{index}";
          indexWidth = 3;
          size = 3;
        };
      })
    );
    expected = [ "rack1-w001" "rack1-w003" "rack2-w002" ];
  };
  declaredDefaultsAreFilled = {
    expr = (lib.mkCluster base).spec.nodes.worker-01;
    expected = {
      class = "worker";
      pool = "workers";
      generated = true;
      rack = "rack1";
      profile = "base";
      diskLayout = "single";
      system = {
        flake = "git+https://git.example.com/lab#nixosConfigurations.worker-01.config.system.build.toplevel";
        storePath = null;
      };
      network = {
        interface = "en*";
        ipPool = "rack1-v4";
        address = "10.0.1.6";
        allocated = true;
      };
    };
  };
}
