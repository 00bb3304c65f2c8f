# A boot disk must have an EFI system partition.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'single': boot disk 'data' has no EFI system partition (type EF00)";
  parity = true;
  declaration = lib.recursiveUpdate base {
    diskLayouts.single = {
      bootDisks = [ "root" "data" ];
      disko.devices.disk.data = {
        selector.index = 1;
        content = {
          type = "gpt";
          partitions.srv = {
            size = "100%";
            content = {
              type = "filesystem";
              format = "xfs";
              mountpoint = "/srv";
            };
          };
        };
      };
    };
  };
}
