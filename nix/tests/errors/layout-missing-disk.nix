# A layout's boot disks name a disk the layout does not declare.
let
  lib = import ../../lib;
  base = import ../fixtures/small.nix;
in
{
  expect = "sendan: disk layout 'storage' references disk 'data2' which is not declared in disko.devices.disk";
  parity = true;
  declaration = lib.recursiveUpdate base {
    diskLayouts.storage = {
      bootDisks = [ "os" "data2" ];
      disko.devices.disk = {
        os.content = base.diskLayouts.single.disko.devices.disk.root.content;
        data1 = {
          selector.rotational = true;
          content = {
            type = "gpt";
            partitions.data = {
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
  };
}
