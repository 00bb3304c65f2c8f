# A partition is a member of an mdadm array the layout does not declare.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'single' references mdadm array 'md0' which is not declared in disko.devices.mdadm";
  parity = true;
  declaration = lib.recursiveUpdate base {
    diskLayouts.single.disko.devices.disk.data = {
      selector.index = 1;
      content = {
        type = "gpt";
        partitions.raid = {
          size = "100%";
          content = {
            type = "mdraid";
            name = "md0";
          };
        };
      };
    };
  };
}
