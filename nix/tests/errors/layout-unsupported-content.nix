# Only the disko content types Sendan models are accepted.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: diskLayouts.single.disko.devices.disk.root.content.partitions.root.content.type must be \"filesystem\", \"lvm_pv\", \"mdraid\", \"swap\" or \"zfs\", got the string \"luks\"";
  parity = false;
  declaration = lib.recursiveUpdate base {
    diskLayouts.single.disko.devices.disk.root.content.partitions.root.content.type = "luks";
  };
}
