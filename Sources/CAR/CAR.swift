import IPLD
