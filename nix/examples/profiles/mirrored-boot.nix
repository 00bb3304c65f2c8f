# Boot for the `mirrored-root` layout: GRUB installs itself to both EFI system partitions (/boot and
# /boot-fallback), so the machine still boots when either disk dies; the root file system is an mdadm RAID1.
{ ... }:
{
  boot.loader.grub = {
    enable = true;
    efiSupport = true;
    efiInstallAsRemovable = true;
    mirroredBoots = [
      {
        devices = [ "nodev" ];
        path = "/boot";
      }
      {
        devices = [ "nodev" ];
        path = "/boot-fallback";
      }
    ];
  };
  boot.swraid = {
    enable = true;
    mdadmConf = "MAILADDR root";
  };
}
